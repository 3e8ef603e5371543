"""The market in ``atp demo``: FMAR next to FMAN, a DSO and a BRP buying flexibility at one
feeder, and what came of it.

The demo's market trades at one feeder (:data:`FEEDER`, where agent 0 and every twentieth
after it live) in hourly gates. FMAN bids the feeder's offers there (``[[market]]``); the
households at the feeder offer each hour on its own, well ahead (:meth:`MarketPlan.fleet_args`),
because FMAN bids an offer only in a gate whose delivery holds its whole default schedule.

In the early afternoon (:meth:`MarketPlan.act_at`) the demo acts as the two buyers:

- the DSO forecasts the feeder's evening (:data:`CONGESTED_H`) from the default schedules of
  the offers there (it reads FMAN's store; a real DSO has a forecast of its own), sets the
  feeder's limit at :data:`LIMIT_SHARE` of the forecast's mean, and registers what lies above
  it as congestion (``atp market congestion add`` does the same), at up to
  :data:`DSO_LIMIT_EUR` per kWh;
- a BRP asks for :data:`BRP_SHARE` of that mean upwards (more consumption) in the late
  evening (:data:`BRP_H`), at up to :data:`BRP_LIMIT_EUR` per kWh, one request per gate.

The gates close well before delivery at high speeds: FMAN's schedules must reach the agents
a delivery margin (a wall second times the speed) before the awarded hour starts.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import protocol
from cloud.fman import execution, open_reader
from cloud.fman.store import ACCEPTED_STATES

#: The market's id on FMAR, the grid node it trades at, and the parties' accounts.
MARKET = "demo-feeder"
FEEDER = "node-00"
FMAN_PARTY = "fman-demo"
DSO = "dso-demo"
BRP = "brp-demo"
#: The evening hours the DSO registers congestion for, and the BRP's hours (UTC, [from, to)).
CONGESTED_H = (17, 21)
BRP_H = (21, 23)
#: The feeder's limit: this share of the forecast's mean over the congested hours.
LIMIT_SHARE = 0.85
#: The BRP's request per slot: this share of the same mean, up.
BRP_SHARE = 0.15
DSO_LIMIT_EUR = 0.30
BRP_LIMIT_EUR = 0.15
#: What a delegated member asks when FMAN bids it (the demo's contracts come at settlement).
DEFAULT_ASK_EUR = 0.05
#: The share of households trading in direct mode, at asks from a comfort priority.
DIRECT_SHARE = 0.1
RES = 900
HOUR = 3600


@dataclass(frozen=True, kw_only=True)
class MarketPlan:
    """The market's timing for one demo day at ``speed``."""

    start: int
    speed: float

    @property
    def gate_lead_s(self) -> int:
        """Gate closure before delivery: an hour, or more where a wall second is long."""
        return max(HOUR, math.ceil(2 * self.speed / HOUR) * HOUR)

    @property
    def transit_s(self) -> int:
        """What the buyers allow for their orders to reach FMAR: half a wall second, at
        least an hour (at 14400x half a second is two hours)."""
        return max(HOUR, math.ceil(0.5 * self.speed / HOUR) * HOUR)

    @property
    def act_at(self) -> int:
        """When the buyers act: early enough that their orders reach the gate delivering
        the first congested hour before it closes."""
        return self.start + CONGESTED_H[0] * HOUR - self.gate_lead_s - HOUR - self.transit_s

    @property
    def device_lead_s(self) -> int:
        """How far ahead the feeder's households offer an hour: the whole evening is offered
        an hour before the buyers act (so the DSO's forecast has it), and every offer is in
        before its gate opens. (An agent's first offer is for the hour this far ahead of the
        day's start, so the feeder offers nothing for the first hours of the day.)"""
        return (CONGESTED_H[1] + 1) * HOUR - (self.act_at - self.start)

    def fleet_args(self) -> list[str]:
        """The fleet's options for the market: hourly offers at the feeder, well ahead."""
        return [
            "--node-param",
            f"{FEEDER}:horizon_h=1",
            "--node-param",
            f"{FEEDER}:lead_s={self.device_lead_s}",
        ]

    def fmar_config(self, *, broker: str, store: Path, anchor: float) -> dict[str, Any]:
        return {
            "service": {
                "id": "demo-fmar",
                "broker": broker,
                "store": str(store),
                "calendar_gates": 10,
            },
            "clock": {"sim_start": str(self.start), "speed": self.speed, "anchor": anchor},
            "markets": {
                MARKET: {
                    "kind": "two-sided",
                    "nodes": [FEEDER],
                    "resolution_s": RES,
                    "horizon_s": HOUR,
                    "gate_period_s": HOUR,
                    "gate_lead_s": self.gate_lead_s,
                    "pricing": "uniform",
                    "time_limit_s": 2.0,
                    "sellers": [FMAN_PARTY],
                    "buyers": [DSO, BRP],
                }
            },
        }

    def fman_market(self) -> dict[str, Any]:
        """FMAN's ``[[market]]`` table."""
        return {
            "id": MARKET,
            "party": FMAN_PARTY,
            "nodes": [FEEDER],
            "default_ask_eur_per_kwh": DEFAULT_ASK_EUR,
        }


# -- the buyers -------------------------------------------------------------------------------


def feeder_defaults(db: Path, *, start: int, end: int) -> dict[int, float]:
    """The default energy per slot of the accepted offers at the feeder in ``[start, end)``."""
    out: dict[int, float] = {}
    with open_reader(db) as s:
        rows = s.portfolio_offers(ACCEPTED_STATES)
    for r in rows:
        o = protocol.decode(r.payload, expect="offer", check=False).body
        if not isinstance(o, protocol.FlexOffer) or o.grid_node != FEEDER:
            continue
        d = o.default
        for t, e in execution.per_slot(d.start, d.energy_kwh, o.resolution_s, RES).items():
            if start <= t < end:
                out[t] = out.get(t, 0.0) + e
    return out


def _window(start: int, hours: tuple[int, int]) -> tuple[int, int]:
    return start + hours[0] * HOUR, start + hours[1] * HOUR


def reachable(plan: MarketPlan, now: float) -> int:
    """The first delivery an order sent at ``now`` still reaches: that of the gate taking
    orders :attr:`MarketPlan.transit_s` later."""
    from cloud.fmar.config import MarketSection
    from cloud.fmar.gates import current_gate

    section = MarketSection(
        **plan.fmar_config(broker="", store=Path(), anchor=0)["markets"][MARKET]
    )
    return current_gate(MARKET, section, now + plan.transit_s).delivery_start


def buy(plan: MarketPlan, *, db: Path, broker: str, record: Path, now: float) -> dict[str, Any]:
    """Act as the DSO and the BRP once (see the module's docstring); what was asked for,
    also written to ``record`` for the summary. Slots whose gate has closed (or closes
    before an order could arrive: the demo ran late) are left out."""
    from cloud.fmar.dso_client import ask
    from cloud.fmar.gates import gate_id

    lo, hi = _window(plan.start, CONGESTED_H)
    forecast = feeder_defaults(db, start=lo, end=hi)
    slots = list(range(lo, hi, RES))
    mean = sum(forecast.values()) / len(slots)
    limit = round(LIMIT_SHARE * mean, 3)
    first = reachable(plan, now)
    js = [j for j, t in enumerate(slots) if t >= first]
    excess = [round(-max(0.0, forecast.get(slots[j], 0.0) - limit), 3) for j in js]
    doc: dict[str, Any] = {
        "market": MARKET,
        "node": FEEDER,
        "acted_at": int(now),
        "forecast_kwh": {str(t): round(forecast.get(t, 0.0), 3) for t in slots},
        "limit_kwh": limit,
        "congestion": None,
        "brp": [],
    }
    if any(excess):
        params = {
            "market": MARKET,
            "id": "evening",
            "node": FEEDER,
            "start": slots[js[0]],
            "kwh": excess,
            "limit_eur_per_kwh": DSO_LIMIT_EUR,
            "partial": True,
        }
        r = ask("congestion", params, url=broker, dso=DSO, timeout_s=20.0, retry_s=2.0)
        doc["congestion"] = {**params, "status": r.status, "reason": r.reason}
    up = round(BRP_SHARE * mean, 3)
    if up > 0:
        b_lo, b_hi = _window(plan.start, BRP_H)
        requests = [
            protocol.MarketRequest(
                market=MARKET,
                party=BRP,
                id=f"imbalance-{gate_id(t)}",
                start=t,
                kwh=[up] * (HOUR // RES),
                limit_eur_per_kwh=BRP_LIMIT_EUR,
                node=FEEDER,
                gate=gate_id(t),
            )
            for t in range(b_lo, b_hi, HOUR)
            if t >= first
        ]
        doc["brp"] = send_orders(requests, broker=broker, party=BRP)
    record.write_text(json.dumps(doc, indent=2))
    return doc


def send_orders(
    orders: list[protocol.MarketRequest], *, broker: str, party: str, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    """Send ``orders`` on the party's bid topic and keep sending each until FMAR's own
    answer arrives (a broker's PUBACK is not delivery); the answers."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from cloud.fman.bus import parse_url

    host, port, _tls = parse_url(broker)
    answers: dict[str, protocol.OrderAnswer] = {}
    lock = threading.Lock()
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe(protocol.topics.market_answer_topic(MARKET, party), qos=1)

    def on_subscribe(*_: object) -> None:
        ready.set()

    def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        try:
            body = protocol.decode(bytes(m.payload), check=False).body
        except protocol.DecodeError:
            return
        if isinstance(body, protocol.OrderAnswer):
            with lock:
                answers[body.ref_id] = body

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.connect(host, port, keepalive=30, clean_start=True)
    c.loop_start()
    try:
        ready.wait(10.0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with lock:
                waiting = [o for o in orders if o.id not in answers]
            if not waiting:
                break
            for o in waiting:
                c.publish(
                    protocol.topics.market_bid_topic(MARKET, party),
                    protocol.encode(o, ts=int(time.time())),
                    qos=1,
                )
            end = time.monotonic() + 2.0
            while time.monotonic() < end and any(o.id not in answers for o in waiting):
                time.sleep(0.02)
    finally:
        c.loop_stop()
        c.disconnect()
    out = []
    for o in orders:
        a = answers.get(o.id)
        out.append(
            {
                "id": o.id,
                "gate": o.gate,
                "start": o.start,
                "kwh": o.kwh,
                "limit_eur_per_kwh": o.limit_eur_per_kwh,
                "accepted": a.accepted if a else None,
                "reasons": [r.message for r in a.reasons] if a else ["no answer"],
            }
        )
    return out


class Buyers(threading.Thread):
    """Acts as the buyers once the simulated clock reaches :attr:`MarketPlan.act_at`; a
    failure is kept (``error``) for the summary rather than stopping the demo."""

    def __init__(
        self, plan: MarketPlan, *, db: Path, broker: str, record: Path, now: Callable[[], float]
    ) -> None:
        super().__init__(name="demo-buyers", daemon=True)
        self.plan, self.db, self.broker, self.record, self.now = plan, db, broker, record, now
        self.stop = threading.Event()
        self.error = ""

    def run(self) -> None:
        while not self.stop.is_set() and self.now() < self.plan.act_at:
            self.stop.wait(0.02)
        if self.stop.is_set():
            return
        try:
            buy(self.plan, db=self.db, broker=self.broker, record=self.record, now=self.now())
        except Exception as exc:  # the demo goes on; its summary says what failed
            self.error = f"{type(exc).__name__}: {exc}"


# -- what came of it --------------------------------------------------------------------------


def market_summary(db: Path, *, start: int, record: Path) -> dict[str, Any]:
    """The market's figures for the day: gates, awards, revenue, and the congestion at the
    feeder before (default schedules) and after (metered) against the DSO's limit."""
    end = start + 86_400
    with open_reader(db) as s:
        gates = [g for g in s.market_gates(MARKET) if start <= g.delivery_start < end]
        awards = [a for a in s.market_awards(start, end) if a.market == MARKET]
        won = [w for w in s.market_won(MARKET) if start <= w.start < end]
        feeder = [
            (r, o)
            for r in s.portfolio_offers(ACCEPTED_STATES)
            if isinstance(
                o := protocol.decode(r.payload, expect="offer", check=False).body,
                protocol.FlexOffer,
            )
            and o.grid_node == FEEDER
        ]
        ids = {o.id for _, o in feeder}
        readings = [
            r
            for r in s.readings_between(
                start=start, end=end, agents=sorted({o.issuer for _, o in feeder})
            )
            if r.offer_id in ids
        ]
    default: dict[int, float] = {}
    scheduled: dict[int, float] = {}
    for r, o in feeder:
        d = o.default
        base = execution.per_slot(d.start, d.energy_kwh, o.resolution_s, RES)
        plan = base
        if r.schedule_start is not None and r.schedule_energy_kwh is not None:
            plan = execution.per_slot(r.schedule_start, r.schedule_energy_kwh, o.resolution_s, RES)
        for into, values in ((default, base), (scheduled, plan)):
            for t, e in values.items():
                into[t] = into.get(t, 0.0) + e
    metered = execution.metered_per_slot(
        ((r.start, r.duration_s, r.energy_kwh) for r in readings), RES
    )
    per_slot: dict[tuple[int, float], float] = {}
    for a in awards:
        key = (a.slot_start, a.price_eur_per_kwh)
        per_slot[key] = per_slot.get(key, 0.0) + a.kwh
    lines = [
        {"slot": t, "kwh": round(k, 6), "price_eur_per_kwh": p}
        for (t, p), k in sorted(per_slot.items())
        if abs(k) > 1e-9
    ]
    up = sum(x["kwh"] for x in lines if x["kwh"] > 0)
    down = -sum(x["kwh"] for x in lines if x["kwh"] < 0)
    # an award's price carries the direction's sign (down: negative), so kWh times price is
    # what the market pays for it, as settlement books it
    revenue = sum(x["kwh"] * x["price_eur_per_kwh"] for x in lines)
    try:
        asked = json.loads(record.read_text())
    except (OSError, ValueError):
        asked = {}
    out: dict[str, Any] = {
        "market": MARKET,
        "node": FEEDER,
        "gates_bid": len(gates),
        "gates_cleared": sum(1 for g in gates if g.result_state is not None),
        "gates_awarded": len({w.gate for w in won if w.state != "late"}),
        "aggregates_won": len(won),
        "aggregates_late": sum(1 for w in won if w.state == "late"),
        "up_kwh": round(up, 3),
        "down_kwh": round(down, 3),
        # what a kWh moved earned, either way
        "avg_price_eur_per_kwh": round(revenue / (up + down), 4) if up + down else None,
        "revenue_eur": round(revenue, 4),
        "awards": lines,
        "asked": asked,
    }
    out.update(
        congestion(
            asked.get("limit_kwh"),
            slots=list(range(*_window(start, CONGESTED_H), RES)),
            default=default,
            scheduled=scheduled,
            metered=metered,
        )
    )
    return out


def congestion(
    limit: float | None,
    *,
    slots: list[int],
    default: dict[int, float],
    scheduled: dict[int, float],
    metered: dict[int, float],
) -> dict[str, Any]:
    """kWh above the DSO's limit in the congested slots, of the feeder's offers: in their
    default schedules (no market, no planning), in their schedules in force, and metered
    (their devices' readings while they ran). Slots without readings are counted
    (``metered_slots``), not guessed."""
    if limit is None:
        return {"limit_kwh": None, "above_before_kwh": None, "above_after_kwh": None}
    seen = [t for t in slots if t in metered]

    def above(values: dict[int, float], where: list[int]) -> float:
        return round(sum(max(0.0, values.get(t, 0.0) - limit) for t in where), 3)

    return {
        "limit_kwh": limit,
        "congested_slots": len(slots),
        "metered_slots": len(seen),
        "above_before_kwh": above(default, slots),
        "above_scheduled_kwh": above(scheduled, slots),
        "above_after_kwh": above(metered, seen),
        "feeder_kwh": {
            str(t): {
                "default": round(default.get(t, 0.0), 3),
                "scheduled": round(scheduled.get(t, 0.0), 3),
                "metered": round(metered[t], 3) if t in metered else None,
            }
            for t in slots
        },
    }


def award_series(summary: dict[str, Any]) -> dict[int, float]:
    """The signed awarded kWh per slot, for the plot."""
    out: dict[int, float] = {}
    for x in summary.get("awards", []):
        out[x["slot"]] = out.get(x["slot"], 0.0) + x["kwh"]
    return out
