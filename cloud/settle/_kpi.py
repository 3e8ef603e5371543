"""The four KPIs of the requirements (F2.5), as pure functions over a window's settlement rows.

Inputs: the slot records of the offers delivered in the window (:class:`SlotRecord`: baseline,
schedule, metered, delivered per slot), the ledger's transactions, and optionally an energy
price series for the savings. Hours are UTC hours (``epoch // 3600``); money is counted by the
delivery day of its transaction, in the window's days. docs/settlement.md gives every
definition with its assumptions; in short:

- ``2.1.1.1.a`` load adaptability: per hour, the flexibility realised (the sum of ``|delivered|``
  over the hour's slots) divided by the portfolio's peak demand (the highest hourly baseline
  energy in the window, MWh/h = MW); and its mean over every hour of the window;
- ``2.1.1.1.c`` the realised flexibility (MWh/h) and the deal value (EUR/h: market revenue plus
  direct offers bought at their asks) per hour of the window, projected linearly to 10, 100
  and 1,000 times the portfolio;
- ``2.1.1.2.a`` revenues (the market's, the parties', the aggregator's net) and energy-cost
  savings in EUR, per MW of flexible capacity and year, and projected;
- ``2.1.1.2.b`` per hour, baseline, scheduled (optimised) and metered (realised) energy in MWh
  and the adaptations ``scheduled - baseline`` and ``metered - baseline``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal

import msgspec

from ._delivery import SlotRecord
from ._ledger import Transaction
from ._money import CENT
from ._period import day_of

SCALES = (10, 100, 1000)
HOURS_PER_YEAR = 8760
_E4 = Decimal("0.0001")


def _mwh(wh: int) -> float:
    return round(wh / 1e6, 6)


def _eur(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


class Window(msgspec.Struct, frozen=True, kw_only=True):
    start: int
    end: int
    hours: int


class HourFlex(msgspec.Struct, frozen=True, kw_only=True):
    hour: int
    flexibility_mwh: float
    #: ``flexibility_mwh`` over the peak demand (MWh/h); 0.05 is 5 %.
    adaptability: float


class LoadAdaptability(msgspec.Struct, frozen=True, kw_only=True):
    window: Window
    peak_demand_mw: float | None
    peak_hour: int | None
    #: Mean of ``adaptability`` over every hour of the window (hours without data count 0);
    #: ``None`` without a positive peak demand.
    average: float | None
    hours: tuple[HourFlex, ...]


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    scale: int
    flexibility_mwh_per_h: float
    deal_value_eur_per_h: Decimal


class Projections(msgspec.Struct, frozen=True, kw_only=True):
    window: Window
    flexibility_mwh_per_h: float
    deal_value_eur_per_h: Decimal
    market_revenue_eur: Decimal
    direct_asks_eur: Decimal
    projections: tuple[Projection, ...]
    assumptions: tuple[str, ...]


class Money(msgspec.Struct, frozen=True, kw_only=True):
    market_revenue_eur: Decimal
    paid_to_parties_eur: Decimal
    aggregator_net_eur: Decimal
    savings_eur: Decimal | None


class MoneyProjection(msgspec.Struct, frozen=True, kw_only=True):
    scale: int
    market_revenue_eur: Decimal
    paid_to_parties_eur: Decimal
    aggregator_net_eur: Decimal
    savings_eur: Decimal | None


class Revenues(msgspec.Struct, frozen=True, kw_only=True):
    window: Window
    factual: Money
    #: The portfolio's flexible capacity: its highest hourly realised flexibility (MW).
    capacity_mw: float | None
    #: ``factual`` per MW of capacity and per year (``factual / capacity * 8760 / hours``).
    per_mw_year: Money | None
    projections: tuple[MoneyProjection, ...]
    assumptions: tuple[str, ...]


class HourAdaptation(msgspec.Struct, frozen=True, kw_only=True):
    hour: int
    baseline_mwh: float
    scheduled_mwh: float
    #: Over the hour's metered slots only (``None``: no slot of the hour was metered).
    metered_mwh: float | None
    planned_mwh: float
    realised_mwh: float | None


class Adaptation(msgspec.Struct, frozen=True, kw_only=True):
    window: Window
    baseline_mwh: float
    scheduled_mwh: float
    metered_mwh: float
    #: Sums over slots of ``|scheduled - baseline|`` and, over metered slots,
    #: ``|metered - baseline|``.
    planned_abs_mwh: float
    realised_abs_mwh: float
    unmetered_slots: int
    hours: tuple[HourAdaptation, ...]


class Kpis(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename={
        "load_adaptability": "2.1.1.1.a",
        "projections": "2.1.1.1.c",
        "revenues": "2.1.1.2.a",
        "adaptation": "2.1.1.2.b",
    },
):
    """The four KPIs; as JSON, one key per KPI id."""

    load_adaptability: LoadAdaptability
    projections: Projections
    revenues: Revenues
    adaptation: Adaptation


class _Hour:
    __slots__ = ("baseline", "flex", "metered", "metered_base", "metered_n", "scheduled")

    def __init__(self) -> None:
        self.baseline = self.scheduled = self.metered = self.metered_base = 0
        self.flex = self.metered_n = 0


def _hours(
    slots: Iterable[SlotRecord], start: int, end: int
) -> tuple[dict[int, _Hour], dict[str, int]]:
    hours: dict[int, _Hour] = defaultdict(_Hour)
    totals = {"planned_abs": 0, "realised_abs": 0, "unmetered": 0}
    for r in slots:
        if not start <= r.start < end:
            continue
        h = hours[r.start // 3600 * 3600]
        h.baseline += r.baseline_wh
        h.scheduled += r.scheduled_wh
        h.flex += abs(r.delivered_wh)
        totals["planned_abs"] += abs(r.scheduled_wh - r.baseline_wh)
        if r.metered_wh is None:
            totals["unmetered"] += 1
        else:
            h.metered += r.metered_wh
            h.metered_base += r.baseline_wh
            h.metered_n += 1
            totals["realised_abs"] += abs(r.metered_wh - r.baseline_wh)
    return dict(hours), totals


def _window(start: int, end: int) -> Window:
    if end <= start:
        raise ValueError("the KPI window ends before it starts")
    return Window(start=start, end=end, hours=-(-(end - start) // 3600))


def _money_in(transactions: Iterable[Transaction], start: int, end: int, tz: str) -> dict[str, int]:
    first, last = day_of(start, tz), day_of(end - 1, tz)
    out = {"market_revenue": 0, "parties": 0, "aggregator": 0, "asks": 0}
    for t in transactions:
        if not first <= t.day <= last:
            continue
        for p in t.postings:
            if p.account == "aggregator:market_revenue":
                out["market_revenue"] += p.amount_cents
            if p.account == "aggregator:asks":
                out["asks"] -= p.amount_cents
            if p.account.startswith("aggregator:"):
                out["aggregator"] += p.amount_cents
            elif p.account.startswith("party:"):
                out["parties"] += p.amount_cents
    return out


def kpis(
    *,
    slots: Iterable[SlotRecord],
    transactions: Iterable[Transaction],
    start: int,
    end: int,
    tz: str = "UTC",
    prices: Mapping[int, Decimal] | None = None,
    price_resolution_s: int = 3600,
) -> Kpis:
    """The four KPIs over ``[start, end)``. ``prices`` (EUR/kWh keyed by the start of each
    price period of ``price_resolution_s``) values the energy saved; without it the savings
    are ``None``."""
    window = _window(start, end)
    slot_list = list(slots)
    hours, totals = _hours(slot_list, start, end)
    money = _money_in(transactions, start, end, tz)
    return Kpis(
        load_adaptability=_load_adaptability(window, hours),
        projections=_projections(window, hours, money),
        revenues=_revenues(window, hours, money, slot_list, prices, price_resolution_s),
        adaptation=_adaptation(window, hours, totals),
    )


def _load_adaptability(window: Window, hours: dict[int, _Hour]) -> LoadAdaptability:
    peak_hour = max(hours, key=lambda h: (hours[h].baseline, -h), default=None)
    peak = hours[peak_hour].baseline if peak_hour is not None else 0
    if peak <= 0:
        return LoadAdaptability(
            window=window,
            peak_demand_mw=None,
            peak_hour=None,
            average=None,
            hours=tuple(
                HourFlex(hour=h, flexibility_mwh=_mwh(v.flex), adaptability=0.0)
                for h, v in sorted(hours.items())
            ),
        )
    rows = tuple(
        HourFlex(hour=h, flexibility_mwh=_mwh(v.flex), adaptability=round(v.flex / peak, 6))
        for h, v in sorted(hours.items())
    )
    return LoadAdaptability(
        window=window,
        peak_demand_mw=_mwh(peak),
        peak_hour=peak_hour,
        average=round(sum(v.flex for v in hours.values()) / peak / window.hours, 6),
        hours=rows,
    )


_PROJECTION_ASSUMPTIONS = (
    "linear scaling: a portfolio k times as large has the same mix of devices, offers the "
    "same flexibility per device and delivers it as reliably",
    "prices do not move with volume: the market is deep enough to take k times the volume at "
    "the same clearing prices and the same asks (an upper bound where it is not)",
    "no grid limits: the network can carry the larger deviations",
    "the window's hours are representative of the hours projected",
)


def _projections(window: Window, hours: dict[int, _Hour], money: dict[str, int]) -> Projections:
    flex = sum(v.flex for v in hours.values()) / 1e6 / window.hours
    deal_cents = money["market_revenue"] + money["asks"]
    per_h = (Decimal(deal_cents) / 100 / window.hours).quantize(_E4)
    return Projections(
        window=window,
        flexibility_mwh_per_h=round(flex, 6),
        deal_value_eur_per_h=per_h,
        market_revenue_eur=_eur(money["market_revenue"]),
        direct_asks_eur=_eur(money["asks"]),
        projections=tuple(
            Projection(
                scale=k,
                flexibility_mwh_per_h=round(flex * k, 6),
                deal_value_eur_per_h=(per_h * k).quantize(_E4),
            )
            for k in SCALES
        ),
        assumptions=_PROJECTION_ASSUMPTIONS,
    )


def _revenues(
    window: Window,
    hours: dict[int, _Hour],
    money: dict[str, int],
    slots: list[SlotRecord],
    prices: Mapping[int, Decimal] | None,
    price_res: int,
) -> Revenues:
    savings: Decimal | None = None
    if prices is not None:
        total = Decimal(0)
        for r in slots:
            if r.metered_wh is None or not window.start <= r.start < window.end:
                continue
            price = prices.get(r.start // price_res * price_res)
            if price is not None:
                total += price * (r.baseline_wh - r.metered_wh) / 1000
        savings = total.quantize(CENT)
    factual = Money(
        market_revenue_eur=_eur(money["market_revenue"]),
        paid_to_parties_eur=_eur(money["parties"]),
        aggregator_net_eur=_eur(money["aggregator"]),
        savings_eur=savings,
    )
    peak_flex = max((v.flex for v in hours.values()), default=0)
    capacity = _mwh(peak_flex) if peak_flex > 0 else None
    per_mw_year = None
    if peak_flex > 0:
        factor = Decimal(1_000_000) / peak_flex * HOURS_PER_YEAR / window.hours

        def scale(x: Decimal) -> Decimal:
            return (x * factor).quantize(CENT)

        per_mw_year = Money(
            market_revenue_eur=scale(factual.market_revenue_eur),
            paid_to_parties_eur=scale(factual.paid_to_parties_eur),
            aggregator_net_eur=scale(factual.aggregator_net_eur),
            savings_eur=scale(savings) if savings is not None else None,
        )
    return Revenues(
        window=window,
        factual=factual,
        capacity_mw=capacity,
        per_mw_year=per_mw_year,
        projections=tuple(
            MoneyProjection(
                scale=k,
                market_revenue_eur=factual.market_revenue_eur * k,
                paid_to_parties_eur=factual.paid_to_parties_eur * k,
                aggregator_net_eur=factual.aggregator_net_eur * k,
                savings_eur=savings * k if savings is not None else None,
            )
            for k in SCALES
        ),
        assumptions=(
            *_PROJECTION_ASSUMPTIONS,
            "per MW and year: the window's money divided by the portfolio's highest hourly "
            "realised flexibility, and scaled from the window's hours to 8,760; it is the same "
            "at every scale under linear scaling",
            "savings: the energy not drawn against the baseline, at the given price series",
        ),
    )


def _adaptation(window: Window, hours: dict[int, _Hour], totals: dict[str, int]) -> Adaptation:
    rows = tuple(
        HourAdaptation(
            hour=h,
            baseline_mwh=_mwh(v.baseline),
            scheduled_mwh=_mwh(v.scheduled),
            metered_mwh=_mwh(v.metered) if v.metered_n else None,
            planned_mwh=_mwh(v.scheduled - v.baseline),
            realised_mwh=_mwh(v.metered - v.metered_base) if v.metered_n else None,
        )
        for h, v in sorted(hours.items())
    )
    return Adaptation(
        window=window,
        baseline_mwh=_mwh(sum(v.baseline for v in hours.values())),
        scheduled_mwh=_mwh(sum(v.scheduled for v in hours.values())),
        metered_mwh=_mwh(sum(v.metered for v in hours.values())),
        planned_abs_mwh=_mwh(totals["planned_abs"]),
        realised_abs_mwh=_mwh(totals["realised_abs"]),
        unmetered_slots=totals["unmetered"],
        hours=rows,
    )


def kpi_json(k: Kpis) -> bytes:
    """The KPIs as JSON, one key per KPI id; EUR as numbers with their exact decimals."""
    return msgspec.json.format(msgspec.json.Encoder(decimal_format="number").encode(k), indent=2)
