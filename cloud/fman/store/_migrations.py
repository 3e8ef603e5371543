"""The schema as an ordered list of migration steps, and what a database's version is.

Every database records the steps applied to it in ``schema_version``. Opening a database for
writing applies the missing steps in order, in one transaction, under the store's write lock
(several workers starting at once migrate once); a database newer than the code is refused.
A step is written once for both databases: ``{int}``, ``{real}`` and ``{blob}`` become each
one's types, and a step may add statements for one database alone (a backfill that needs a
function each spells differently).

A database made before versions were recorded (the store up to protocol 1.2) has the tables
but no ``schema_version``: it is stamped with the step whose columns it has (1, 2 or 3),
once, and migrated on from there.

To change the schema, append a step: never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._market import MARKET_TABLES

Dialect = Literal["sqlite", "postgresql"]

#: Where an offer's delivery window ends: its latest start plus its longest profile.
DELIVERY_END = "start_before + n_slots * resolution_s"

TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"int": "INTEGER", "real": "REAL", "blob": "BLOB"},
    "postgresql": {"int": "BIGINT", "real": "DOUBLE PRECISION", "blob": "BYTEA"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    version: int
    description: str
    sql: tuple[str, ...]
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()

    def statements(self, dialect: Dialect) -> list[str]:
        own = self.sqlite if dialect == "sqlite" else self.postgresql
        return [s.format(**TYPES[dialect]) for s in self.sql] + list(own)


def version_table(dialect: Dialect) -> str:
    """The table that records the steps applied."""
    return (
        "CREATE TABLE IF NOT EXISTS schema_version (version {int} PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at {real} NOT NULL)"
    ).format(**TYPES[dialect])


STEPS: tuple[Step, ...] = (
    Step(
        version=1,
        description="the tables of the first store",
        sql=(
            "CREATE TABLE offers (id TEXT PRIMARY KEY, issuer TEXT NOT NULL, device TEXT, "
            "load_type TEXT, grid_node TEXT, mode TEXT, revision {int} NOT NULL, "
            "state TEXT NOT NULL, created_at {int}, acceptance_before {int}, "
            "assignment_before {int}, start_after {int}, start_before {int}, n_slots {int}, "
            "resolution_s {int}, payload {blob}, reason TEXT, received_at {real}, "
            "updated_at {real}, worker TEXT, schedule_version {int} DEFAULT 0, "
            "metered_slots {int} DEFAULT 0, flagged_slots {int} DEFAULT 0, executed_at {real})",
            "CREATE INDEX idx_offers_issuer_state ON offers (issuer, state)",
            "CREATE INDEX idx_offers_state_assignment_before ON offers (state, assignment_before)",
            "CREATE INDEX idx_offers_start_after ON offers (start_after)",
            "CREATE TABLE schedules (offer_id TEXT, version {int}, issuer TEXT NOT NULL, "
            "start {int}, profile {int}, energy_kwh TEXT, kind TEXT, status TEXT NOT NULL, "
            "created_at {real}, sent_at {real}, answered_at {real}, reason TEXT, "
            "PRIMARY KEY (offer_id, version))",
            "CREATE INDEX idx_schedules_status ON schedules (status)",
            "CREATE TABLE readings (agent TEXT, device TEXT, start {int}, duration_s {int}, "
            "energy_kwh {real}, offer_id TEXT, received_at {real}, "
            "PRIMARY KEY (agent, device, start, duration_s))",
            "CREATE INDEX idx_readings_offer_id ON readings (offer_id)",
            "CREATE INDEX idx_readings_start ON readings (start)",
            "CREATE TABLE agents (agent TEXT PRIMARY KEY, state TEXT, since {int}, "
            "status_ts {int}, seen_at {real}, version TEXT, health TEXT)",
            "CREATE TABLE messages (agent TEXT, msg_id TEXT, channel TEXT, ref_id TEXT, "
            "revision {int}, outcome TEXT, reasons TEXT, worker TEXT, at {real}, "
            "PRIMARY KEY (agent, msg_id))",
            "CREATE INDEX idx_messages_at ON messages (at)",
            "CREATE TABLE execution (offer_id TEXT, slot {int}, scheduled_kwh {real}, "
            "baseline_kwh {real}, metered_kwh {real}, flagged {int}, "
            "PRIMARY KEY (offer_id, slot))",
            "CREATE INDEX idx_execution_slot ON execution (slot)",
            "CREATE TABLE series (name TEXT, slot {int}, value {real}, PRIMARY KEY (name, slot))",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value {int})",
            "CREATE TABLE lease (name TEXT PRIMARY KEY, holder TEXT, expires {real})",
            "CREATE TABLE stats (worker TEXT, key TEXT, value {real}, updated_at {real}, "
            "PRIMARY KEY (worker, key))",
        ),
    ),
    Step(
        version=2,
        description="schedules.offer_revision: the offer revision a schedule was planned for "
        "(protocol 1.1)",
        sql=("ALTER TABLE schedules ADD COLUMN offer_revision {int} NOT NULL DEFAULT 0",),
    ),
    Step(
        version=3,
        description="agents.devices: the devices an agent announced (protocol 1.2)",
        sql=("ALTER TABLE agents ADD COLUMN devices TEXT",),
    ),
    Step(
        version=4,
        description="schedules.n_slots: a schedule's length, so its end is known without "
        "parsing its energy",
        sql=("ALTER TABLE schedules ADD COLUMN n_slots {int}",),
        sqlite=("UPDATE schedules SET n_slots = json_array_length(energy_kwh)",),
        postgresql=("UPDATE schedules SET n_slots = json_array_length(energy_kwh::json)",),
    ),
    Step(
        version=5,
        description="schedules.worker: the worker (planner lease holder) that issued it",
        sql=("ALTER TABLE schedules ADD COLUMN worker TEXT",),
    ),
    Step(
        version=6,
        description="quarantine: readings ingest set aside, with the reason",
        # IF NOT EXISTS: a store made before versions were recorded may have the table (the
        # store of protocol 1.3 made it), with these very columns
        sql=(
            "CREATE TABLE IF NOT EXISTS quarantine (agent TEXT, device TEXT, start {int}, "
            "duration_s {int}, energy_kwh {real}, offer_id TEXT, code TEXT, message TEXT, "
            "msg_id TEXT, received_at {real}, PRIMARY KEY (agent, device, start, duration_s))",
            "CREATE INDEX IF NOT EXISTS idx_quarantine_received_at ON quarantine (received_at)",
        ),
    ),
    Step(
        version=7,
        description="settlement: contract versions, runs, the ledger and its postings, the "
        "verdict per offer and slot, bills, offers held for review",
        sql=(
            # a contract is never edited: a change, or its end, is a new version row
            "CREATE TABLE contracts (id TEXT, version {int}, party TEXT NOT NULL, "
            "valid_from {int} NOT NULL, valid_until {int}, mode TEXT NOT NULL, "
            "document TEXT NOT NULL, added_at {real}, PRIMARY KEY (id, version))",
            "CREATE INDEX idx_contracts_party ON contracts (party)",
            "CREATE TABLE settlement_runs (id TEXT PRIMARY KEY, period TEXT NOT NULL, "
            "start {int} NOT NULL, end_ {int} NOT NULL, tz TEXT NOT NULL, "
            "booked_at {int} NOT NULL, evaluated {int}, settled {int}, held {int}, "
            "skipped {int}, transactions {int}, at {real})",
            "CREATE INDEX idx_settlement_runs_period ON settlement_runs (period)",
            # double entry in integer cents: a correction is a new key, never an update
            "CREATE TABLE ledger (key TEXT PRIMARY KEY, base TEXT NOT NULL, kind TEXT NOT NULL, "
            "day TEXT NOT NULL, booked_at {int} NOT NULL, account TEXT NOT NULL, "
            "offer_id TEXT, award TEXT, contract_id TEXT, contract_version {int}, "
            "quantity {int}, unit TEXT, rate TEXT, memo TEXT, run_id TEXT NOT NULL)",
            "CREATE INDEX idx_ledger_day ON ledger (day)",
            "CREATE TABLE postings (key TEXT, n {int}, account TEXT NOT NULL, "
            "amount_cents {int} NOT NULL, PRIMARY KEY (key, n))",
            "CREATE INDEX idx_postings_account ON postings (account)",
            "CREATE TABLE settlement_offers (offer_id TEXT PRIMARY KEY, period TEXT NOT NULL, "
            "agent TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL, day TEXT, "
            "first_slot {int}, end_ {int}, document TEXT NOT NULL, run_id TEXT NOT NULL, "
            "evaluated_at {real})",
            "CREATE INDEX idx_settlement_offers_period ON settlement_offers (period, status)",
            "CREATE TABLE settlement_slots (offer_id TEXT, start {int}, resolution_s {int}, "
            "default_wh {int}, baseline_wh {int}, scheduled_wh {int}, metered_wh {int}, "
            "delivered_wh {int}, PRIMARY KEY (offer_id, start))",
            "CREATE INDEX idx_settlement_slots_start ON settlement_slots (start)",
            "CREATE TABLE bills (party TEXT, period TEXT, run_id TEXT, issued_at {int}, "
            "total_cents {int}, document TEXT NOT NULL, PRIMARY KEY (party, period, run_id))",
            "CREATE TABLE review (offer_id TEXT PRIMARY KEY, period TEXT NOT NULL, "
            "agent TEXT, device TEXT, reasons TEXT, status TEXT NOT NULL, held_at {real}, "
            "run_id TEXT, released_at {real}, note TEXT)",
            "CREATE INDEX idx_review_status ON review (status)",
        ),
    ),
    Step(
        version=8,
        description="market_awards: what markets awarded each member offer per slot and gate",
        sql=(
            "CREATE TABLE market_awards (market TEXT, gate_start {int}, offer_id TEXT, "
            "slot_start {int}, kwh {real} NOT NULL, price_eur_per_kwh {real} NOT NULL, "
            "aggregate_id TEXT NOT NULL, "
            "PRIMARY KEY (market, gate_start, offer_id, slot_start))",
            "CREATE INDEX idx_market_awards_slot_start ON market_awards (slot_start)",
        ),
    ),
    Step(
        version=9,
        description="market bidding: the gates FMAN bid in, its bids and the aggregates won",
        sql=MARKET_TABLES,
    ),
    Step(
        version=10,
        description="offers by the end of their delivery window: the portfolio of a period",
        # the expression is the one ``portfolio_offers`` filters on, so that both databases
        # find a period's offers by the index instead of reading every offer ever stored
        sql=(f"CREATE INDEX idx_offers_delivery_end ON offers (({DELIVERY_END}))",),
    ),
)

LATEST = STEPS[-1].version
assert [s.version for s in STEPS] == list(range(1, LATEST + 1)), "steps must count up from 1"


#: Tables every FMAN database has had since the first store, and the agent's store's own.
FMAN_TABLES = frozenset({"offers", "schedules", "messages"})
AGENT_TABLES = frozenset({"outbox", "offers", "meta"})


def foreign_kind(tables: set[str], offer_columns: set[str]) -> str | None:
    """What a database that is not FMAN's looks like, or ``None`` for FMAN's own or an empty
    one. Checked before anything is written: a worker or ``atp fman migrate`` pointed at an
    agent's store would otherwise add FMAN's tables to it, and a reader would misread its
    ``offers`` as an FMAN store made before versions were recorded."""
    tables = {t for t in tables if not t.startswith("sqlite_")}
    if not tables or (tables >= FMAN_TABLES and "payload" in offer_columns):
        return None
    if tables >= AGENT_TABLES and "body" in offer_columns:
        return "it looks like an agent's store"
    return f"its tables: {', '.join(sorted(tables)[:6])}{', ...' if len(tables) > 6 else ''}"


def unversioned_version(tables: set[str], columns: dict[str, set[str]]) -> int:
    """The version of a database made before versions were recorded, from what it has:
    0 for an empty one."""
    if "offers" not in tables:
        return 0
    if "devices" in columns.get("agents", set()):
        return 3
    if "offer_revision" in columns.get("schedules", set()):
        return 2
    return 1
