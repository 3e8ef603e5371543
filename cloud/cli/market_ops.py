"""``atp market open|close|set`` (the operator) and ``atp market congestion ...`` (the DSO).

``open`` and ``close`` write the market store that ``atp fmar run`` reads: a closed market
refuses every order with a reason and opens no new gate; a gate opened before the closing
still clears what it took. ``set`` changes a market's parameters in fmar.toml, which the
service reads again. All three go through :mod:`cloud.fmar.control`, as the dashboard's
markets page does. ``congestion`` speaks to the running service over MQTT as the
``dso`` account (``atp service add dso``), exactly as a DSO's own system would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._fmandb import TimeParam
from .market import _JSON, _STORE, market

if TYPE_CHECKING:
    from cloud.fmar.store import MarketState


def _control(market_id: str, state: MarketState, note: str, store: str, as_json: bool) -> None:
    from cloud.fmar import MarketError
    from cloud.fmar._errors import MarketStoreError
    from cloud.fmar.control import set_state

    try:
        change = set_state(store, market_id, state, note=note)
    except MarketStoreError as exc:
        raise click.ClickException(f"{exc} (pass --store)") from None
    except MarketError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps({"market": market_id, "state": state, "was": change.was, "note": note})
        )
        return
    click.echo(change.text())


_NOTE = click.option("--note", default="", help="Why (shown to parties whose orders are refused).")


@market.command("close")
@click.argument("market_id", metavar="MARKET")
@_NOTE
@_STORE
@_JSON
def close_market(market_id: str, note: str, store: str, as_json: bool) -> None:
    """Suspend MARKET: the running service refuses its orders (saying the market is
    closed) and opens no new gate until `atp market open`. Takes effect within a second."""
    _control(market_id, "closed", note, store, as_json)


@market.command("open")
@click.argument("market_id", metavar="MARKET")
@_NOTE
@_STORE
@_JSON
def open_market(market_id: str, note: str, store: str, as_json: bool) -> None:
    """Resume MARKET after `atp market close`: its gates take orders again."""
    _control(market_id, "open", note, store, as_json)


@market.command("set")
@click.argument("market_id", metavar="MARKET")
@click.argument("assignments", metavar="KEY=VALUE...", nargs=-1, required=True)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="fmar.toml",
    show_default=True,
    envvar="ATP_FMAR_CONFIG",
    help="The running service's fmar.toml (env ATP_FMAR_CONFIG).",
)
@_JSON
def set_params(
    market_id: str, assignments: tuple[str, ...], config_path: Path, as_json: bool
) -> None:
    """Change MARKET's parameters in fmar.toml, e.g. `min_order_kwh=0.5 pricing=pay-as-bid
    sellers=house-*,fman`. The file is checked whole first (a refused change leaves it as
    it was); the running service reads it within a second and opens its next gate with
    them (the allow-lists apply at once). Keys: pricing, resolution_s, horizon_s,
    gate_period_s, gate_lead_s, min_order_kwh, time_limit_s, voll, sellers, buyers."""
    from cloud.fmar import MarketError
    from cloud.fmar.control import change_params, parse_value

    values = {}
    try:
        for a in assignments:
            key, eq, text = a.partition("=")
            if not eq:
                raise click.BadParameter(f"{a!r}: write KEY=VALUE", param_hint="KEY=VALUE")
            values[key.strip()] = parse_value(market_id, key.strip(), text)
        change = change_params(config_path, market_id, values)
    except MarketError as exc:
        raise click.ClickException(f"{config_path}: {exc}") from None
    if as_json:
        import msgspec

        doc = {
            "market": market_id,
            "changed": list(change.changed),
            "params": {k: msgspec.to_builtins(getattr(change.after, k)) for k in values},
        }
        click.echo(json.dumps(doc))
        return
    click.echo(change.text(config_path))


# -- the DSO interface ------------------------------------------------------------------------


@market.group()
def congestion() -> None:
    """The DSO interface: register congestion, list registrations, sum up trades."""


def _dso_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--broker",
                default="mqtt://127.0.0.1:1883",
                envvar="ATP_BROKER_URL",
                show_default=True,
                help="The broker FMAR listens on (mqtts:// for TLS; env ATP_BROKER_URL).",
            ),
            click.option(
                "--credentials",
                "credentials_file",
                default="",
                envvar="ATP_DSO_CREDENTIALS",
                help="username:password file of the dso account (services/dso/credentials "
                "of `atp service add dso`; env ATP_DSO_CREDENTIALS). Empty: anonymous.",
            ),
            click.option("--ca-file", default="", help="CA of the broker's TLS certificate."),
            click.option("--dso", default="dso", show_default=True, help="The DSO's account name."),
            click.option(
                "--timeout",
                "timeout_s",
                type=click.FloatRange(min=1),
                default=30.0,
                show_default=True,
                help="Seconds to wait for FMAR's answer (the request is sent again meanwhile).",
            ),
            _JSON,
        ]
    ):
        f = option(f)
    return f


def _ask(method: str, params: dict[str, Any], opts: dict[str, Any]) -> Any:
    from cloud.fmar import MarketError
    from cloud.fmar.dso_client import ask

    try:
        r = ask(
            method,
            params,
            url=opts["broker"],
            dso=opts["dso"],
            credentials_file=opts["credentials_file"],
            ca_file=opts["ca_file"],
            timeout_s=opts["timeout_s"],
        )
    except MarketError as exc:
        raise click.ClickException(str(exc)) from None
    if r.status != "ok":
        raise click.ClickException(f"refused: {r.reason}")
    return r.body


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: numbers separated by commas", param_hint=what
        ) from None


@congestion.command("add")
@click.argument("market_id", metavar="MARKET", required=False)
@click.option(
    "--file",
    "params_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The registration as JSON: the request (examples/dso/congestion.request.json) or "
    "its params; the options below are then not needed.",
)
@click.option("--id", "reg_id", help="The registration's id (yours; unique per market).")
@click.option("--node", help="The grid node (may be left out in a market of one node).")
@click.option("--start", type=TimeParam(), help="First slot: epoch seconds or ISO 8601.")
@click.option("--kwh", help="Signed kWh per slot, comma-separated (positive: up, e.g. -5,-5,-3).")
@click.option(
    "--limit",
    help="EUR/kWh at most: one figure, one per slot comma-separated, or 'none' (fixed demand).",
)
@click.option("--all-or-nothing", is_flag=True, help="Every slot in full or none.")
@_dso_options
def congestion_add(
    market_id: str | None,
    params_file: Path | None,
    reg_id: str | None,
    node: str | None,
    start: int | None,
    kwh: str | None,
    limit: str | None,
    all_or_nothing: bool,
    **opts: Any,
) -> None:
    """Register congestion at a node: it becomes a request in the next gate that trades
    its slots (each gate takes the slots of its delivery)."""
    if params_file is not None:
        try:
            params = json.loads(params_file.read_text())
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{params_file}: {exc}") from None
        if isinstance(params, dict) and "method" in params:  # a whole request
            params = params.get("params", {})
        if not isinstance(params, dict):
            raise click.ClickException(f"{params_file}: expected a JSON object")
        if market_id:
            params["market"] = market_id
    else:
        missing = [
            n
            for n, v in (
                ("MARKET", market_id),
                ("--id", reg_id),
                ("--start", start),
                ("--kwh", kwh),
            )
            if v is None
        ]
        if missing or limit is None:
            raise click.UsageError(
                f"give --file, or {', '.join([*missing, *(['--limit'] if limit is None else [])])}"
            )
        assert kwh is not None
        lim: Any = None
        if limit.strip().lower() != "none":
            values = _floats(limit, "--limit")
            lim = values[0] if len(values) == 1 else values
        params = {
            "market": market_id,
            "id": reg_id,
            "start": start,
            "kwh": _floats(kwh, "--kwh"),
            "limit_eur_per_kwh": lim,
            "partial": not all_or_nothing,
        }
        if node:
            params["node"] = node
    body = _ask("congestion", params, opts)
    if opts["as_json"]:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(
        f"congestion {body['id']} on {body['market']} at {body['node']} registered "
        f"({body['stored']}): {len(body['kwh'])} slot(s) from "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(body['start']))} UTC, "
        f"trading from gate {body['next_gate']} on"
    )


@congestion.command("list")
@click.argument("market_id", metavar="MARKET", required=False)
@_dso_options
def congestion_list(market_id: str | None, **opts: Any) -> None:
    """The DSO's registrations (of MARKET, or all) and the gates that cleared them."""
    body = _ask("congestion/list", {"market": market_id} if market_id else {}, opts)
    if opts["as_json"]:
        click.echo(json.dumps(body, indent=2))
        return
    regs = body["registrations"]
    if not regs:
        click.echo("no registrations")
        return
    for r in regs:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["start"]))
        total = sum(r["kwh"])
        click.echo(
            f"{r['market']:<16} {r['id']:<20} {r['node']:<12} from {when} UTC, "
            f"{len(r['kwh'])} slot(s), {total:+.3f} kWh, limit {r['limit_eur_per_kwh']}, "
            f"cleared in {len(r['cleared_gates'])} gate(s)"
        )


@congestion.command("summary")
@click.argument("market_id", metavar="MARKET", required=False)
@click.option("--id", "reg_id", help="One registration.")
@_dso_options
def congestion_summary(market_id: str | None, reg_id: str | None, **opts: Any) -> None:
    """The DSO's completed trades: per registration, the kWh accepted in every cleared gate
    and what it paid."""
    params = {k: v for k, v in (("market", market_id), ("id", reg_id)) if v is not None}
    body = _ask("congestion/summary", params, opts)
    if opts["as_json"]:
        click.echo(json.dumps(body, indent=2))
        return
    for r in body["registrations"]:
        click.echo(
            f"{r['market']:<16} {r['id']:<20} asked {r['asked_kwh']:.3f} kWh, accepted "
            f"{r['accepted_kwh']:.3f} kWh in {len(r['gates'])} gate(s), "
            f"paid {r['paid_eur']:.4f} EUR"
        )
    click.echo(f"total: accepted {body['accepted_kwh']:.3f} kWh, paid {body['paid_eur']:.4f} EUR")


@congestion.command("prosumers")
@click.argument("market_id", metavar="MARKET")
@click.option("--node", help="Only sell orders at this node.")
@_dso_options
def congestion_prosumers(market_id: str, node: str | None, **opts: Any) -> None:
    """The parties with open sell orders on MARKET (at --node): what can be bought there in
    the gates not cleared yet."""
    params: dict[str, Any] = {"market": market_id}
    if node:
        params["node"] = node
    body = _ask("prosumers", params, opts)
    if opts["as_json"]:
        click.echo(json.dumps(body, indent=2))
        return
    if not body["prosumers"]:
        click.echo("no open sell orders")
        return
    for p in body["prosumers"]:
        offers = p["offers"]
        rng = sum(o["range_kwh"] for o in offers)
        click.echo(f"{p['party']:<24} {len(offers)} offer(s), {rng:.3f} kWh of range")
