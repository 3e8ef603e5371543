"""The end of ``atp demo``'s day: contracts for its agents, the day settled, the four KPIs and
the aggregator's margin printed, and KPI 2.1.1.2.b drawn.

The simulated fleet comes without contracts, so the demo makes one per agent and trading mode
from what the agents offered, before settling: delegated offers alternate between strict
rewards and revenue sharing (agents in turn, so both kinds show), direct offers are paid at
their asks. The rates are the demo's own, stated in :data:`STRICT` and :data:`SHARE`. The
settlement is the one ``atp settle`` runs, booked at the simulated end of the day plus an
hour; offers still executing then (their readings' grace period not over) are left for a
later run, as in a deployment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from cloud.settle import (
    Contract,
    DirectPrice,
    Party,
    Period,
    RevenueSharing,
    StrictRewards,
    Terms,
    day_of,
    eur_text,
)

DAY_S = 86_400
#: The demo's strict-reward terms: per kWh delivered, per hour of time flexibility offered,
#: penalty per kWh scheduled but not delivered; no monthly fee (the demo settles one day).
STRICT = StrictRewards(
    reward_eur_per_kwh=Decimal("0.04"),
    reward_eur_per_flex_hour=Decimal("0.005"),
    penalty_eur_per_kwh=Decimal("0.02"),
)
#: The demo's revenue share: half of the market revenue the agent's flexibility earned.
SHARE = RevenueSharing(share=Decimal("0.5"))
#: The second plot the demo writes.
PLOT = "adaptation.png"


def demo_contracts(modes: dict[str, dict[str, str]], *, start: int) -> list[Contract]:
    """One contract per agent and trading mode from ``modes`` (agent -> device -> the mode
    its offers mostly had), in force from ``start``."""
    out = []
    for n, agent in enumerate(sorted(modes)):
        by_mode: dict[str, list[str]] = {}
        for device, mode in sorted(modes[agent].items()):
            by_mode.setdefault(mode, []).append(device)
        for mode, devices in sorted(by_mode.items()):
            terms: Terms = DirectPrice(price="asks")
            if mode == "delegated":
                terms = STRICT if n % 2 == 0 else SHARE
            out.append(
                Contract(
                    id=f"demo-{agent}-{mode}",
                    aggregator="demo-aggregator",
                    party=Party(id=agent),
                    valid_from=start,
                    mode=mode,  # type: ignore[arg-type]  # "direct" or "delegated", from the fleet
                    devices=tuple(devices),
                    terms=terms,
                    note="made by atp demo for its simulated fleet",
                )
            )
    return out


def settle_day(
    db: Path, out: Path, *, start: int, echo: Callable[[str], None] = click.echo
) -> dict[str, Any]:
    """Settle the demo's day on its store, print the KPIs and the aggregator's margin (the
    market revenue among its parts: settlement reads the market awards), and draw
    KPI 2.1.1.2.b to ``out/adaptation.png``; the figures as a JSON-ready dict."""
    from cloud.fman import open_store
    from cloud.fman.kpi_plot import plot_adaptation
    from cloud.fman.settlement import add_contract, bill, period_kpis, run_settlement

    from .settle import kpi_lines

    day = day_of(start)
    period = Period.parse(day)
    booked = start + DAY_S + 3600
    with open_store(db) as store:
        done = store.delivered_offers(start=period.start, end=period.end, states=("executed",))
        votes: dict[tuple[str, str], Counter[str]] = {}
        for o in done:
            votes.setdefault((o.issuer, o.device or ""), Counter())[o.mode or "delegated"] += 1
        modes: dict[str, dict[str, str]] = {}
        for (agent, device), tally in votes.items():
            if not device:
                continue  # an offer without a device id: no contract can name it
            modes.setdefault(agent, {})[device] = tally.most_common(1)[0][0]
        for contract in demo_contracts(modes, start=start):
            add_contract(store, contract, now=start)
        result = run_settlement(store, period, now=booked)
        k = period_kpis(store, period)
        agg = bill(store, "aggregator", period, now=booked)
        executing = store.count_offers(states=("executing",))
        elsewhere = store.count_offers(states=("executed",)) - len(result.held)
    echo("")
    echo(
        f"settlement of {day}: {result.settled} offers settled, {len(result.held)} held for "
        f"review; {executing} still executing and {elsewhere} delivered on another day, left "
        f"for their own runs; {result.transactions} ledger transactions, under contracts the "
        f"demo made for its {len(modes)} agents"
    )
    for line in kpi_lines(k):
        echo(line)
    f = k.revenues.factual
    echo(
        f"aggregator's margin: {eur_text(agg.total_cents)} EUR (market revenue "
        f"{f.market_revenue_eur} EUR, paid to prosumers {f.paid_to_parties_eur} EUR)"
    )
    plot = plot_adaptation(k, out / PLOT, title=f"atp demo, {day}: KPI 2.1.1.2.b")
    echo(f"bills: atp bill list --period {day} --store {db}; KPI 2.1.1.2.b plot: {plot}")
    return {
        "day": day,
        "offers_settled": result.settled,
        "offers_held": len(result.held),
        "transactions": result.transactions,
        "contracts_for_agents": len(modes),
        "market_revenue_eur": str(f.market_revenue_eur),
        "paid_to_parties_eur": str(f.paid_to_parties_eur),
        "aggregator_margin_eur": eur_text(agg.total_cents),
        "plot": str(plot),
    }
