"""Clearing a book: the one entry point, a pure function from a book to a result.

How (docs/market.md has the measurements behind the choices):

1. The book is checked (:func:`~cloud.fmar.validate_book`) and laid out as arrays in its
   canonical order (orders and requests by id), so a book clears the same however its lists
   are ordered.
2. A small book (the compact model up to ``exact_vars`` columns), or one with a profile the
   compiled programme cannot price (a polytope, a general dependency row), is solved whole
   as a mixed-integer programme by HiGHS (:mod:`cloud.fmar._exact`); the MIP's dual bound is
   the proven bound. Its integer choices fixed, the LP's duals are the uniform prices.
3. A large one goes to cutting planes on the Lagrangian dual of the node balance
   (:mod:`cloud.fmar._decompose`): the planner's compiled pricing of every order, a small
   master LP, rounding of the choices, and a second phase with the choices fixed that gives
   the energies and the prices.
4. Whatever happens, running every default and accepting nothing is feasible: it is the
   answer when nothing better is found in time (``method: default``). Every schedule passes
   :func:`protocol.check_assignment` and every node and slot balances before a result is
   returned; the welfare is computed from what is awarded (:func:`~cloud.fmar._numeric.welfare`),
   never taken from a solver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

import protocol

from ._book import Book, validate_book
from ._decompose import applies, decompose
from ._errors import BookError, ClearingError
from ._exact import compact_size, fixed_prices, solve_mip
from ._numeric import Numeric, imbalance, numeric, welfare
from ._result import Acceptance, Award, Clearing, Flow, Method, Pricing, Status
from ._settle import settle

#: Books whose compact model has at most this many columns are solved as one MIP.
EXACT_VARS = 20_000
#: ``status`` is ``optimal`` within this relative gap (docs/market.md, rule 7).
OPTIMAL_GAP = 1e-4
#: Largest imbalance (kWh) a result may show per node and slot: solver tolerance.
BALANCE_TOLERANCE = 1e-6
DEFAULT_VOLL = 10.0

Progress = Callable[[str], None]


def clear(
    book: Book,
    *,
    pricing: Pricing = "uniform",
    time_limit_s: float = 10.0,
    voll: float = DEFAULT_VOLL,
    relative_gap: float = OPTIMAL_GAP,
    exact_vars: int = EXACT_VARS,
    check: bool = True,
    progress: Progress | None = None,
) -> Clearing:
    """Clear ``book`` (see the module docstring). ``relative_gap`` is where the search may
    stop; ``check`` False skips the book's rules for one already checked (``read_book``
    does). Raises :class:`~cloud.fmar.BookError` for a book that breaks a rule."""
    deadline = time.monotonic() + time_limit_s
    say = progress or (lambda _: None)
    if not math.isfinite(voll) or voll < 0:
        raise BookError([protocol.FieldError("voll", f"{voll:g} must be finite and >= 0")])
    if check:
        errors = validate_book(book)
        if errors:
            raise BookError(errors)
    num = numeric(book, voll=voll)
    say(
        f"{num.n_orders} sell orders, {len(num.requests)} requests, {num.n_nodes} node(s), "
        f"{num.n_links} link(s), {num.slots} slots"
    )
    outcome = _solve(
        num, deadline=deadline, relative_gap=relative_gap, exact_vars=exact_vars, say=say
    )
    return _result(num, outcome, pricing=pricing, say=say)


class _Outcome:
    """Schedules (block index, start, energies) per order, accepted kWh, flows, prices, the
    proven bound and how they were found."""

    def __init__(
        self,
        *,
        blocks: list[int],
        starts: list[int],
        energies: list[np.ndarray],
        accepted: np.ndarray,
        flows: np.ndarray,
        prices: np.ndarray,
        bound: float,
        method: Method,
    ) -> None:
        self.blocks = blocks
        self.starts = starts
        self.energies = energies
        self.accepted = accepted
        self.flows = flows
        self.prices = prices
        self.bound = bound
        self.method = method


def _default_outcome(num: Numeric, bound: float) -> _Outcome:
    blocks, starts = (
        zip(*(num.default_item(i) for i in range(num.n_orders)), strict=True)
        if num.n_orders
        else ((), ())
    )
    return _Outcome(
        blocks=list(blocks),
        starts=list(starts),
        energies=[np.asarray(o.offer.default.energy_kwh, dtype=float) for o in num.orders],
        accepted=np.zeros((len(num.requests), num.slots)),
        flows=np.zeros((num.n_links, num.slots)),
        prices=np.zeros((num.n_nodes, num.slots)),
        bound=bound,
        method="default",
    )


def _solve(
    num: Numeric, *, deadline: float, relative_gap: float, exact_vars: int, say: Progress
) -> _Outcome:
    small = compact_size(num) <= exact_vars
    cat = None if small else applies(num)
    if cat is not None:
        say("cutting planes on the Lagrangian dual of the node balance")
        found = decompose(num, cat, deadline=deadline, relative_gap=relative_gap, say=say)
        return _Outcome(
            blocks=found.blocks,
            starts=found.starts,
            energies=found.energies,
            accepted=found.accepted,
            flows=found.flows,
            prices=found.prices,
            bound=found.bound,
            method="decomposition",
        )
    say("solving the compact MIP")
    exact = solve_mip(num, deadline=deadline, relative_gap=min(relative_gap, OPTIMAL_GAP))
    if exact.solved is None:
        say("no solution in time: every order runs its default")
        base = _default_outcome(num, exact.bound)
        blocks, starts = base.blocks, base.starts
        aon = np.where(num.req_partial, 1.0, 0.0)
        method: Method = "default"
    else:
        blocks, starts = exact.solved.blocks, exact.solved.starts
        aon = exact.solved.aon
        method = "mip"
    fixed = fixed_prices(num, blocks, starts, aon)
    if fixed is None:
        raise ClearingError("the linear programme with the choices fixed could not be solved")
    solved, prices = fixed
    return _Outcome(
        blocks=solved.blocks,
        starts=solved.starts,
        energies=solved.energies,
        accepted=solved.accepted,
        flows=solved.flows,
        prices=prices,
        bound=exact.bound,
        method=method,
    )


def _finish(num: Numeric, out: _Outcome, say: Progress) -> tuple[_Outcome, np.ndarray]:
    """Snap energies to their bounds (solver tolerance), check every schedule with the
    protocol and the balance; the deviations per order and slot. Falls back to every default
    if a check fails (never seen: a solver's tolerance is not a proof)."""
    h = num.slots
    res = num.market.resolution_s
    dev = -num.default.copy()
    for i, v in enumerate(num.views):
        b = v.blocks[out.blocks[i]]
        x = np.clip(out.energies[i], b.lower, b.upper)
        x[np.abs(x) < 1e-12] = 0.0
        out.energies[i] = x
        errors = protocol.check_assignment(
            v.offer, start=out.starts[i], profile=b.profile, energy_kwh=x.tolist()
        )
        if errors:
            say(f"{v.offer.id}: {errors[0]}; every order falls back to its default")
            return _finish(num, _default_outcome(num, out.bound), say)
        s = (out.starts[i] - num.market.start) // res
        dev[i, s : s + b.n] += x
    dev[np.abs(dev) < 1e-12] = 0.0
    out.accepted[np.abs(out.accepted) < 1e-12] = 0.0
    out.flows = np.maximum(out.flows, 0.0)
    out.flows[out.flows < 1e-12] = 0.0
    worst = float(np.abs(imbalance(num, dev, out.accepted, out.flows)).max(initial=0.0))
    if worst > BALANCE_TOLERANCE and out.method != "default":
        say(f"imbalance of {worst:g} kWh; every order falls back to its default")
        return _finish(num, _default_outcome(num, out.bound), say)
    del h
    return out, dev


def _result(num: Numeric, out: _Outcome, *, pricing: Pricing, say: Progress) -> Clearing:
    out, dev = _finish(num, out, say)
    w = welfare(num, dev, out.accepted, out.flows)
    bound = out.bound
    if bound < w and w - bound <= 1e-6 * max(1.0, abs(w)):
        bound = w  # a bound just below an achieved welfare is solver tolerance
    gap_ok = math.isfinite(bound) and bound - w <= max(OPTIMAL_GAP * max(abs(bound), abs(w)), 1e-6)
    prices = out.prices.copy()
    prices[np.abs(prices) < 1e-12] = 0.0
    s = settle(
        num, deviation=dev, accepted=out.accepted, flows=out.flows, prices=prices, pricing=pricing
    )
    awards = []
    for i, o in enumerate(num.orders):
        moved = bool(np.abs(dev[i]).max(initial=0.0) > 1e-9)
        if not moved and abs(s.seller_paid[i]) <= 1e-9:
            continue
        b = num.views[i].blocks[out.blocks[i]]
        awards.append(
            Award(
                offer_id=o.offer.id,
                node=num.nodes[num.order_node[i]],
                start=out.starts[i],
                profile=b.profile,
                energy_kwh=_r(out.energies[i], 9),
                deviation_kwh=_r(dev[i], 9),
                ask_eur=_f(s.seller_cost[i]),
                paid_eur=_f(s.seller_paid[i]),
                make_whole_eur=_f(s.seller_make_whole[i]),
            )
        )
    requests = [
        Acceptance(
            id=r.id,
            node=num.nodes[num.req_node[j]],
            accepted_kwh=_r(out.accepted[j], 9),
            value_eur=_f(s.request_value[j]),
            paid_eur=_f(s.request_paid[j]),
            make_whole_eur=_f(s.request_make_whole[j]),
        )
        for j, r in enumerate(num.requests)
    ]
    flows = [
        Flow(
            source=num.nodes[num.link_src[k]],
            target=num.nodes[num.link_dst[k]],
            kwh=_r(out.flows[k], 9),
        )
        for k in range(num.n_links)
    ]
    status: Status = "optimal" if gap_ok else "feasible"
    if out.method == "default" and not gap_ok:
        # nothing better than every default was found in time (or a found clearing failed
        # the final check): say so, with the bound, rather than claim a clearing
        status = "time_limit_defaults"
        say(f"every order runs its default: welfare 0 against a bound of {bound:.6g} EUR")
    return Clearing(
        status=status,
        welfare_eur=_f(w),
        bound_eur=_f(bound) if math.isfinite(bound) else None,
        pricing=pricing,
        method=out.method,
        prices={n: _r(prices[k], 9) for k, n in enumerate(num.nodes)},
        awards=tuple(awards),
        requests=tuple(requests),
        flows=tuple(flows),
        transport_eur=_f(s.transport_eur),
        surplus_eur=_f(s.surplus_eur),
        make_whole_eur=_f(s.make_whole_eur),
        uplift_eur=_f(s.uplift_eur if s.uplift_eur > 1e-7 else 0.0),
    )


def _f(v: float) -> float:
    """A money or energy figure as it is shown: to 1e-9, without a negative zero."""
    out = round(float(v), 9)
    return 0.0 if out == 0 else out


def _r(values: np.ndarray, digits: int) -> tuple[float, ...]:
    return tuple(0.0 if v == 0 else v for v in np.round(values, digits).tolist())
