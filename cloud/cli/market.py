"""``atp market``: flexibility markets. ``clear`` clears an order book offline."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from cloud.fmar import Book, Clearing
    from cloud.fmar.config import MarketSection
    from cloud.fmar.store import GateRow, SqlMarketStore

_FILE = click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)


@click.group()
def market() -> None:
    """Flexibility markets (FMAR): clear order books of sell orders and requests."""


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@market.command()
@click.option(
    "--book",
    "book_file",
    type=_FILE,
    required=True,
    help="The order book (JSON, docs/market.md); - reads standard input.",
)
@click.option(
    "--pricing",
    type=click.Choice(["uniform", "pay-as-bid"]),
    default="uniform",
    show_default=True,
    help="Uniform prices per node and slot, or each party its own bid.",
)
@click.option(
    "--time-limit",
    "time_limit_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds the search may take (the prices are computed after it).",
)
@click.option(
    "--voll",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Value of lost load, EUR/kWh: what a request without a limit is worth.",
)
@click.option(
    "--gap",
    "relative_gap",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Relative gap to the proven bound at which to stop.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def clear(
    book_file: Path,
    pricing: str,
    time_limit_s: float,
    voll: float,
    relative_gap: float,
    as_json: bool,
) -> None:
    """Clear the order book in --book: choose every sell order's schedule and every
    request's accepted kWh for the most welfare, and price the outcome. Prints awards,
    accepted requests, flows, prices, the welfare and a proven bound on it (everything with
    --json); progress goes to standard error. Exit 1 means the book is refused (one line per
    error, with its field path)."""
    from cloud.fmar import BookError, MarketError, clear, read_book, to_builtins

    try:
        data = sys.stdin.buffer.read() if str(book_file) == "-" else book_file.read_bytes()
    except OSError as exc:
        _fail([f"{book_file}: {exc.strerror or exc}"])
    try:
        book = read_book(data)
    except BookError as exc:
        _fail([f"{book_file}: {e}" for e in exc.errors])
    progress = None if as_json else (lambda m: click.echo(f"  {m}", err=True))
    started = time.monotonic()
    try:
        result = clear(
            book,
            pricing=pricing,  # type: ignore[arg-type]  # click.Choice checked it
            time_limit_s=time_limit_s,
            voll=voll,
            relative_gap=relative_gap,
            check=False,
            progress=progress,
        )
    except MarketError as exc:
        _fail([f"{book_file}: {exc}"])
    elapsed = time.monotonic() - started
    if as_json:
        click.echo(json.dumps(to_builtins(result)))
        return
    _print(result, book, elapsed)


def _print(result: Clearing, book: Book, elapsed: float) -> None:
    res = book.market.resolution_s

    def when(ts: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))

    if result.awards:
        click.echo(
            f"{'sell order':<32} {'node':<10} {'start (UTC)':<17} {'prof':>4} "
            f"{'up kWh':>9} {'down kWh':>9} {'ask EUR':>9} {'paid EUR':>9}"
        )
        for a in result.awards:
            up = sum(v for v in a.deviation_kwh if v > 0)
            down = -sum(v for v in a.deviation_kwh if v < 0)
            click.echo(
                f"{a.offer_id:<32} {a.node:<10} {when(a.start):<17} {a.profile:>4} "
                f"{up:>9.3f} {down:>9.3f} {a.ask_eur:>9.3f} {a.paid_eur:>9.3f}"
            )
    click.echo(
        f"{'request':<32} {'node':<10} {'asked kWh':>10} {'accepted':>10} {'value EUR':>10} "
        f"{'paid EUR':>9}"
    )
    asked = {r.id: r for r in book.requests}
    for r in result.requests:
        want = sum(abs(v) for v in asked[r.id].kwh)
        got = sum(abs(v) for v in r.accepted_kwh)
        click.echo(
            f"{r.id:<32} {r.node:<10} {want:>10.3f} {got:>10.3f} {r.value_eur:>10.3f} "
            f"{r.paid_eur:>9.3f}"
        )
    for f in result.flows:
        total = sum(f.kwh)
        if total > 0:
            click.echo(f"flow {f.source} -> {f.target}: {total:.3f} kWh")
    for node, prices in result.prices.items():
        traded = [p for p in prices if p]
        if traded:
            click.echo(
                f"prices at {node}: {min(prices):.4f} to {max(prices):.4f} EUR/kWh "
                f"over {len(prices)} slots of {res // 60} min"
            )
    bound = "none" if result.bound_eur is None else f"{result.bound_eur:.6g}"
    gap = "" if result.bound_eur is None else f", gap {100 * result.gap:.3g} %"
    click.echo(
        f"{len(result.awards)} awards, welfare {result.welfare_eur:.6g} EUR, bound {bound}"
        f"{gap}, {result.status} ({result.method}, {result.pricing}), {elapsed:.2f} s"
    )
    if result.make_whole_eur or result.uplift_eur or result.transport_eur:
        click.echo(
            f"transport {result.transport_eur:.4g} EUR, make-whole {result.make_whole_eur:.4g} "
            f"EUR, surplus {result.surplus_eur:.4g} EUR, uplift {result.uplift_eur:.4g} EUR"
        )


# -- the service's store, read-only (atp fmar run writes it) -------------------------------------

_STORE = click.option(
    "--store",
    default=".atp/fmar.db",
    envvar="ATP_FMAR_STORE",
    show_default=True,
    metavar="PATH|URL",
    help="The market service's store: an SQLite file or a postgresql:// URL "
    "(service.store of fmar.toml; env ATP_FMAR_STORE).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _reader(location: str) -> SqlMarketStore:
    from cloud.fmar import MarketError
    from cloud.fmar.store import open_market_store

    try:
        return open_market_store(location, readonly=True)
    except MarketError as exc:
        raise click.ClickException(
            f"{exc} (pass --store, or start the service with `atp fmar run`)"
        ) from None


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _market_config(store: SqlMarketStore, market: str) -> MarketSection:
    import msgspec

    from cloud.fmar.config import MarketSection

    row = next((m for m in store.markets() if m.id == market), None)
    if row is None:
        known = ", ".join(m.id for m in store.markets()) or "none"
        raise click.ClickException(f"no market {market!r} in {store.where} (markets: {known})")
    return msgspec.json.decode(row.config, type=MarketSection)


@market.command("list")
@_STORE
@_JSON
def list_markets(store: str, as_json: bool) -> None:
    """The markets the service runs: open or closed (`atp market close`), their gates and
    the latest one."""
    import msgspec

    s = _reader(store)
    try:
        rows = []
        for m in s.markets():
            cfg = msgspec.json.decode(m.config)
            gates = s.gates(m.id)
            latest = gates[-1] if gates else None
            control = s.control(m.id)
            rows.append(
                {
                    "id": m.id,
                    "state": control.state if control else "open",
                    "kind": cfg.get("kind", "two-sided"),
                    "nodes": cfg.get("nodes", []),
                    "pricing": cfg.get("pricing", "uniform"),
                    "gates": len(gates),
                    "cleared": sum(g.state == "cleared" for g in gates),
                    "latest_gate": latest.gate if latest else None,
                    "latest_state": latest.state if latest else None,
                }
            )
    finally:
        s.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no markets")
        return
    click.echo(
        f"{'market':<24} {'state':<7} {'kind':<13} {'pricing':<10} {'gates':>5} "
        f"{'cleared':>7}  latest"
    )
    for r in rows:
        shown = f"{r['latest_gate']} ({r['latest_state']})" if r["latest_gate"] else "-"
        click.echo(
            f"{r['id']:<24} {r['state']:<7} {r['kind']:<13} {r['pricing']:<10} {r['gates']:>5} "
            f"{r['cleared']:>7}  {shown}"
        )


@market.command("show")
@click.argument("market_id", metavar="MARKET")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Latest gates shown."
)
@_STORE
@_JSON
def show(market_id: str, limit: int, store: str, as_json: bool) -> None:
    """A market's configuration (as the service last ran it) and its latest gates."""
    import msgspec

    s = _reader(store)
    try:
        cfg = _market_config(s, market_id)
        gates = s.gates(market_id)[-limit:]
        counts = {g.gate: len(s.orders(market_id, g.gate)) for g in gates}
    finally:
        s.close()
    doc = {
        "id": market_id,
        "config": msgspec.to_builtins(cfg),
        "gates": [
            {
                "gate": g.gate,
                "state": g.state,
                "opens_at": g.opens_at,
                "closes_at": g.closes_at,
                "delivery_start": g.delivery_start,
                "slots": g.slots,
                "resolution_s": g.resolution_s,
                "orders": counts[g.gate],
            }
            for g in gates
        ],
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    c = doc["config"]
    click.echo(
        f"market {market_id}: {c['kind']} at {', '.join(c['nodes'])}, {c['pricing']} pricing, "
        f"a gate every {c['gate_period_s']} s trading {c['horizon_s']} s in slots of "
        f"{c['resolution_s']} s, closing {c['gate_lead_s']} s ahead"
    )
    for g in doc["gates"]:
        click.echo(
            f"  {g['gate']:<16} {g['state']:<8} closes {_when(g['closes_at'])} UTC, "
            f"{g['orders']} order(s)"
        )


def _pick_gate(s: SqlMarketStore, market_id: str, gate: str | None) -> GateRow:
    if gate is not None:
        row = s.gate(market_id, gate)
        if row is None:
            raise click.ClickException(f"market {market_id} has no gate {gate!r}")
        return row
    gates = s.gates(market_id)
    if not gates:
        raise click.ClickException(f"market {market_id} has no gates yet")
    return (
        gates[-1]
        if not [g for g in gates if g.state == "open"]
        else min((g for g in gates if g.state == "open"), key=lambda g: g.closes_at)
    )


@market.command("book")
@click.argument("market_id", metavar="MARKET")
@click.option("--gate", help="The gate (default: the one taking orders, else the latest).")
@_STORE
def book(market_id: str, gate: str | None, store: str) -> None:
    """A gate's order book as JSON: exactly what `atp market clear --book` reads, so a
    gate's clearing can be repeated offline."""
    from cloud.fmar.orders import book_doc

    s = _reader(store)
    try:
        cfg = _market_config(s, market_id)
        g = _pick_gate(s, market_id, gate)
        doc = book_doc(cfg, g, s.orders(market_id, g.gate))
    finally:
        s.close()
    click.echo(json.dumps(doc, indent=2))


@market.command("results")
@click.argument("market_id", metavar="MARKET")
@click.option("--gate", help="One gate's whole result (the message the service published).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Latest results shown.",
)
@_STORE
@_JSON
def results(market_id: str, gate: str | None, limit: int, store: str, as_json: bool) -> None:
    """The cleared gates of a market, latest first; with --gate, that gate's result."""
    s = _reader(store)
    try:
        _market_config(s, market_id)
        if gate is not None:
            row = s.result(market_id, gate)
            if row is None:
                raise click.ClickException(f"gate {gate!r} of {market_id} has no result")
            click.echo(json.dumps(json.loads(row.payload), indent=2))
            return
        rows = s.results(market_id, limit=limit)
    finally:
        s.close()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "gate": r.gate,
                        "status": r.status,
                        "welfare_eur": r.welfare_eur,
                        "cleared_at": r.cleared_at,
                        "published": r.published,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo(f"no cleared gates in {market_id}")
        return
    for r in rows:
        doc = json.loads(r.payload)
        click.echo(
            f"{r.gate:<16} {r.status:<10} welfare {r.welfare_eur:>10.4f} EUR  "
            f"{len(doc.get('awards', []))} award(s), {len(doc.get('requests', []))} request(s)"
            f"{'' if r.published else '  (not yet published)'}"
        )


# -- FMAN's side: what it bid and won ------------------------------------------------------


def _fman_bid_commands() -> None:
    """``atp market bids|awards``: read from FMAN's store (docs/trading.md)."""
    from cloud.cli._fmandb import db_option, emit_json, json_option, open_db, table, when

    @market.command("bids")
    @db_option
    @click.option("--market", "market_id", help="One market only.")
    @click.option("--gate", help="One gate only.")
    @json_option
    def bids(db: str, market_id: str | None, gate: str | None, as_json: bool) -> None:
        """The sell orders FMAN bid per gate: aggregate, node, members, asks, FMAR's answer."""
        with open_db(db) as r:
            rows = [b for b in r.market_bids(market_id, gate)]
            gates = {(g.market, g.gate): g for g in r.market_gates(market_id)}
        if as_json:
            emit_json(
                [
                    {
                        "market": b.market,
                        "gate": b.gate,
                        "aggregate_id": b.aggregate_id,
                        "node": b.node,
                        "members": [m for m, _ in b.members],
                        "ask_up_eur_per_kwh": b.ask_up,
                        "ask_down_eur_per_kwh": b.ask_down,
                        "status": b.status,
                        "reason": b.reason or "",
                        "bid_at": gates[(b.market, b.gate)].bid_at
                        if (b.market, b.gate) in gates
                        else None,
                    }
                    for b in rows
                ]
            )
            return
        if not rows:
            click.echo("no bids")
            return
        table(
            [
                {
                    "market": b.market,
                    "gate": b.gate,
                    "aggregate": b.aggregate_id,
                    "node": b.node,
                    "members": len(b.members),
                    "ask": f"{max([*b.ask_up, *b.ask_down], default=0.0):.4f}",
                    "status": b.status + (f" ({b.reason})" if b.reason else ""),
                }
                for b in rows
            ],
            [
                ("market", "MARKET"),
                ("gate", "GATE"),
                ("aggregate", "AGGREGATE"),
                ("node", "NODE"),
                ("members", "MEMBERS"),
                ("ask", "ASK MAX EUR/KWH"),
                ("status", "STATUS"),
            ],
        )
        for g in gates.values():
            if g.result_state:
                click.echo(f"gate {g.market}/{g.gate}: result {g.result_state} {when(g.result_at)}")

    @market.command("awards")
    @db_option
    @click.option("--market", "market_id", help="One market only.")
    @click.option("--gate", help="One gate only.")
    @json_option
    def awards(db: str, market_id: str | None, gate: str | None, as_json: bool) -> None:
        """What FMAN won per gate (kWh up and down, price, what became of it) and which
        member offers carry it, per market slot."""
        with open_db(db) as r:
            won = [w for w in r.market_won(market_id) if gate is None or w.gate == gate]
            starts = {
                (g.market, g.delivery_start)
                for g in r.market_gates(market_id)
                if gate is None or g.gate == gate
            }
            members = [m for m in r.market_awards(0, 2**62) if (m.market, m.gate_start) in starts]
        if as_json:
            emit_json(
                {
                    "aggregates": [
                        {
                            "market": w.market,
                            "gate": w.gate,
                            "aggregate_id": w.aggregate_id,
                            "node": w.node,
                            "start": w.start,
                            "energy_kwh": w.energy_kwh,
                            "deviation_kwh": w.deviation_kwh,
                            "up_kwh": w.up_kwh,
                            "down_kwh": w.down_kwh,
                            "paid_eur": w.paid_eur,
                            "price_eur_per_kwh": w.price_eur_per_kwh,
                            "state": w.state,
                            "note": w.note,
                        }
                        for w in won
                    ],
                    "members": [
                        {
                            "market": m.market,
                            "gate_start": m.gate_start,
                            "aggregate_id": m.aggregate_id,
                            "offer_id": m.offer_id,
                            "slot_start": m.slot_start,
                            "kwh": m.kwh,
                            "price_eur_per_kwh": m.price_eur_per_kwh,
                        }
                        for m in members
                    ],
                }
            )
            return
        if not won:
            click.echo("no awards")
            return
        carriers: dict[str, set[str]] = {}
        for m in members:
            carriers.setdefault(m.aggregate_id, set()).add(m.offer_id)
        table(
            [
                {
                    "market": w.market,
                    "gate": w.gate,
                    "aggregate": w.aggregate_id,
                    "up": f"{w.up_kwh:.3f}",
                    "down": f"{w.down_kwh:.3f}",
                    "eur": f"{w.paid_eur:.2f}",
                    "price": f"{w.price_eur_per_kwh:.4f}",
                    "members": len(carriers.get(w.aggregate_id, ())),
                    "state": w.state + (f" ({w.note})" if w.note else ""),
                }
                for w in won
            ],
            [
                ("market", "MARKET"),
                ("gate", "GATE"),
                ("aggregate", "AGGREGATE"),
                ("up", "UP KWH"),
                ("down", "DOWN KWH"),
                ("eur", "PAID EUR"),
                ("price", "EUR/KWH"),
                ("members", "MEMBERS"),
                ("state", "STATE"),
            ],
        )


_fman_bid_commands()

# open|close and congestion live in their own module; importing it adds them to the group
from . import market_ops as _market_ops  # noqa: E402, F401
