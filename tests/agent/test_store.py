"""The store on real SQLite files: order, atomicity, durability across reopen, retention."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import msgspec
import pytest

import protocol
from agent.errors import StoreError
from agent.store import Plan, Store
from protocol import MeterReading
from protocol.samples import two_slot_offer
from tests.agent.helpers import T0


def test_outbox_keeps_order_across_reopen_and_never_reuses_ids(tmp_path):
    path = tmp_path / "a.db"
    with Store(path=path) as s:
        ids = [s.enqueue(topic="t", payload=bytes([i]), kind="meter", now=T0) for i in range(5)]
        s.outbox_done(ids[:2])
    with Store(path=path) as s:
        rows = s.outbox_after(0, 10)
        assert [r.payload for r in rows] == [bytes([2]), bytes([3]), bytes([4])]
        s.outbox_done(r.id for r in rows)
        new = s.enqueue(topic="t", payload=b"x", kind="meter", now=T0)
        assert new > ids[-1]  # AUTOINCREMENT: a consumer's "after id" never skips a new row


def test_a_failed_transaction_leaves_nothing(tmp_path):
    with Store(path=tmp_path / "a.db") as s:
        with pytest.raises(RuntimeError), s.transaction():
            s.save_offer(two_slot_offer(), "offered", T0)
            s.enqueue(topic="t", payload=b"offer", kind="offer", now=T0)
            raise RuntimeError("crash in the middle")
        assert s.outbox_size() == 0 and s.offers() == []


def test_committed_data_survives_kill_9(tmp_path):
    """A child process commits and is killed with SIGKILL before closing: all of it is there."""
    path = tmp_path / "k.db"
    code = f"""
import os, signal
from agent.store import Store
from protocol.samples import two_slot_offer
s = Store(path={str(path)!r})
with s.transaction():
    s.save_offer(two_slot_offer(), "offered", {T0})
    s.enqueue(topic="t", payload=b"offer", kind="offer", now={T0})
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    with Store(path=path) as s:
        assert [r.payload for r in s.outbox_after(0, 10)] == [b"offer"]
        assert s.offers()[0].offer == two_slot_offer()


def test_reader_sees_the_writer_while_it_writes(tmp_path):
    path = tmp_path / "r.db"
    writer = Store(path=path)
    writer.set("connected", 1)
    reader = Store.reader(path)
    assert reader.get("connected") == "1"
    with writer.transaction():
        writer.set("connected", 0)
        assert reader.get("connected") == "1"  # WAL: readers see the last commit
    assert reader.get("connected") == "0"
    with pytest.raises(StoreError):
        reader.set("x", 1)  # read-only
    reader.close()
    writer.close()


def test_reader_of_a_missing_store_says_so(tmp_path):
    with pytest.raises(StoreError, match="no such database"):
        Store.reader(tmp_path / "none.db")


def test_readings_once_per_device_and_start_then_batched(tmp_path):
    with Store(path=tmp_path / "m.db") as s:
        r = MeterReading("d1", T0, 900, 0.5, "o1")
        assert s.add_readings([r]) == 1
        assert s.add_readings([MeterReading("d1", T0, 900, 0.7, "")]) == 0
        s.add_readings([MeterReading("d2", T0, 900, 0.1, "")])
        assert s.unbatched_readings() == [r, MeterReading("d2", T0, 900, 0.1, "")]
        with s.transaction():
            s.mark_batched(s.unbatched_readings(), 1)
        assert s.unbatched_readings() == [] and s.last_readings()[0] == r


def test_plan_in_force_is_the_highest_version(tmp_path):
    with Store(path=tmp_path / "p.db") as s:
        base = dict(offer_id="o", device="d", start=T0, resolution_s=900, profile=0)
        s.save_plan(Plan(version=0, energy_kwh=(0.1,), source="default", **base), T0)
        s.save_plan(Plan(version=2, energy_kwh=(0.3,), source="fman", **base), T0)
        assert s.plan("o").version == 2 and s.plans(["o", "x"])["o"].energy_kwh == (0.3,)
        assert s.plan("o").slot_energy(T0) == 0.3 and s.plan("o").slot_energy(T0 + 900) is None


def test_plan_energy_over_finer_and_coarser_slots():
    hourly = Plan(offer_id="o", device="d", version=1, start=T0, resolution_s=3600, profile=0,
                  energy_kwh=(4.0, 8.0), source="fman")  # fmt: skip
    # an hourly plan on a quarter-hour agent: a quarter of each hour in each quarter
    assert [hourly.slot_energy(T0 + q * 900, 900) for q in range(8)] == [1.0] * 4 + [2.0] * 4
    assert hourly.slot_energy(T0 - 900, 900) is None and hourly.slot_energy(T0 + 7200, 900) is None
    quarters = Plan(offer_id="o", device="d", version=1, start=T0 + 900, resolution_s=900,
                    profile=0, energy_kwh=(1.0, 2.0, 3.0), source="fman")  # fmt: skip
    # quarter-hour plan seen by the hour: what falls within it
    assert quarters.slot_energy(T0, 3600) == 6.0
    assert quarters.slot_energy(T0 + 1800, 900) == 2.0


def test_retention_drops_old_sent_readings_and_undelivered_meter_batches(tmp_path):
    day = 86_400
    with Store(path=tmp_path / "ret.db", retention_s=7 * day) as s:
        old, new = (
            MeterReading("d", T0, 900, 1.0, ""),
            MeterReading("d", T0 + 8 * day, 900, 1.0, ""),
        )
        s.add_readings([old, new])
        with s.transaction():
            s.mark_batched([old], 1)
        s.enqueue(topic="m", payload=b"old", kind="meter", now=T0)
        s.enqueue(topic="o", payload=b"offer", kind="offer", now=T0)
        counts = s.purge(T0 + 8 * day)
        assert counts["readings"] == 1 and counts["dropped_meter_batches"] == 1
        assert s.readings() == [new]  # never-batched readings are kept
        assert [r.payload for r in s.outbox_after(0, 10)] == [b"offer"]  # offers are kept
        assert s.get("dropped_meter_batches") == "1"


def test_store_uses_wal_and_syncs_every_commit_by_default(tmp_path):
    path = tmp_path / "w.db"
    with Store(path=path) as s, Store(path=tmp_path / "n.db", durability="normal") as n:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert n.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "v.db"
    with Store(path=path) as s:
        s.set("schema", 99)
    with pytest.raises(StoreError, match="newer"):
        Store(path=path)


def test_a_store_of_schema_1_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    with Store(path=path) as s:
        s.save_offer(two_slot_offer(), "accepted", T0)
        s.set("schema", 1)
    conn = sqlite3.connect(path)  # the offers table as schema 1 had it
    conn.execute(
        "CREATE TABLE o1 AS SELECT id, device, revision, state, body, assignment_before, "
        "created_at, updated FROM offers"
    )
    conn.execute("DROP TABLE offers")
    conn.execute("ALTER TABLE o1 RENAME TO offers")
    conn.commit()
    conn.close()
    with Store(path=path) as s:
        (old,) = s.offers()
        assert (old.offer, old.state, old.episode) == (two_slot_offer(), "accepted", old.offer.id)
        assert s.get("schema") == "3"


def test_a_store_of_schema_2_is_upgraded_and_its_outbox_kept_for_the_answers(tmp_path):
    """Rows queued by schema 2 (deleted on PUBACK then) learn the message id and revision
    FMAN's answer names, so the upgraded agent can match the answer to them."""
    path = tmp_path / "old.db"
    offer = two_slot_offer()
    conn = sqlite3.connect(path)  # the outbox as schema 2 had it
    conn.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '', "
        "created INTEGER NOT NULL, retain INTEGER NOT NULL DEFAULT 0)"
    )
    update = protocol.encode(msgspec.structs.replace(offer, revision=2), ts=T0, msg_id="o.r2")
    conn.execute(
        "INSERT INTO outbox(topic, payload, kind, ref, created) VALUES (?, ?, ?, ?, ?)",
        ("t", update, "offer", offer.id, T0),
    )
    conn.commit()
    conn.close()
    with Store(path=path) as s:
        (row,) = s.outbox_after(0, 10)
        assert (row.msg_id, row.revision, row.due, row.attempts) == ("o.r2", 2, None, 0)
        assert s.outbox_answered("offer", offer.id, 1) == []  # another revision's answer
        assert [r.id for r in s.outbox_answered("offer", offer.id, 2)] == [row.id]
        assert s.outbox_size() == 0 and s.get("schema") == "3"


def test_an_answered_kind_waits_for_its_answer_after_the_puback(tmp_path):
    with Store(path=tmp_path / "s.db") as s:
        a = s.enqueue(topic="t", payload=b"m", kind="meter", ref="7", revision=7,
                      msg_id="ag.m7", now=T0)  # fmt: skip
        b = s.enqueue(topic="t", payload=b"a", kind="ack", now=T0)
        assert [r.id for r in s.outbox_unsent(0, 10)] == [a, b]
        s.outbox_sent([(a, 1000.0)])  # acknowledged by the broker, due again at 1000
        s.outbox_done([b])
        assert [r.id for r in s.outbox_unsent(0, 10)] == []
        assert s.outbox_due(999.0, 10) == [] and s.outbox_awaiting() == 1
        (due,) = s.outbox_due(1000.0, 10)
        assert (due.id, due.attempts, s.outbox_next_due()) == (a, 1, 1000.0)
        # FMAN's answer names the message id of a meter batch; a refusal keeps it aside
        assert [r.id for r in s.outbox_answered("meter", "ag.m7", 7, dead_reason="no")] == [a]
        assert s.outbox_size() == 0 and s.dead_letter_count() == 1
