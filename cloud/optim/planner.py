"""The OR-Tools planner: a proven bound, a feasible plan, and a fallback that always answers.

How a plan is made (see docs/optim.md for the measurements behind these choices):

1. Offers are checked (``protocol.validate_offer``, the request's resolution); those that
   cannot be planned are named in ``PlanResult.infeasible`` and the rest is planned.
2. The greedy heuristic places every offer at once: the incumbent and the fallback. The
   envelope LP (per-slot, total and running-sum ranges of every offer) gives a first bound.
3. A small problem is solved exactly: the compact mixed-integer model of
   :mod:`cloud.optim.model` goes to HiGHS with the time limit and relative gap.
4. A large one on one node without peak limits, every profile a generalised battery, goes to
   cutting planes on the Lagrangian dual (:mod:`cloud.optim.cutting_plane`): every offer
   priced by a compiled dynamic programme, whole-portfolio columns in a small master LP, the
   master's mix rounded and repaired by best-response sweeps.
   Any other large one goes to column generation. The restricted master (an LP) combines known
   schedules of each coupled offer and models box-only offers exactly; the pricing step finds
   each offer's cheapest schedule under the master's duals (:mod:`cloud.optim.oracle`). The
   Lagrangian value at the priced duals (smoothed towards the best dual point so far, and
   first the envelope LP's slot values) is a lower bound on the LP relaxation of the
   convex-hull model, hence on the optimum. Iterations stop at the requested gap, at the time
   limit, or when no column improves (the bound is then the LP optimum).
5. (Column generation) Choices mixed by the LP are rounded (the profile and start with most
   weight) and a last LP over the rounded choices sets the energies.
6. Every schedule passes ``protocol.check_assignment`` before it is returned; one that does
   not (never seen, but a solver's tolerance is not a proof) is replaced by its greedy
   placement. The objective is computed from the returned schedules.

The time limit bounds the whole call. Every phase after the greedy placement checks the
deadline (pricing between offers, each solver call gets what is left), and the final check of
every schedule has time set aside for it (about 40 us an offer); what runs over is at most one
step of a phase: one offer's pricing, one LP, one master. When the method found nothing better
than the greedy placement, the result says so (``status="fallback"``) and ``detail`` says
which method fell back and why (the time limit, the solver, or no better plan).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

import protocol

from . import solver as lp
from .blocks import OfferView, plannable
from .bounds import envelope
from .colgen import ColumnGeneration
from .cutting_plane import applies, plan_portfolio
from .errors import SolverError
from .greedy import greedy
from .model import build, is_boxed, template
from .placements import Placement, Plan, adopt, flex_of, value_of, with_boxes
from .problem import PlannedSchedule, PlanRequest, PlanResult
from .terms import Terms, terms_for

#: Problems whose compact model has at most this many variables are solved as one MIP.
EXACT_VARS = 20_000
#: The share of the time limit the greedy placement may spend refining its candidates.
GREEDY_SHARE = 0.2

Progress = Callable[[str], None]


class OrToolsPlanner:
    """Plans offers with OR-Tools (HiGHS); see the module docstring for the method."""

    def __init__(
        self,
        *,
        engine: lp.Engine = "highs",
        exact_vars: int = EXACT_VARS,
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.exact_vars = exact_vars
        self.progress = progress
        self._lam0: np.ndarray | None = None

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def plan(self, request: PlanRequest) -> PlanResult:
        started = time.monotonic()
        views, infeasible = plannable(request)
        # the final feasibility check of every schedule takes about 40 us an offer
        reserve = min(5e-5 * len(views), 0.3 * request.time_limit_s)
        deadline = started + request.time_limit_s - reserve
        limit = f"the {request.time_limit_s:g} s time limit"
        terms = terms_for(request, views)
        self._say(f"{len(views)} offers over {terms.slots} slots")
        # the heuristic refines its placements within a fifth of the time limit
        placements, _ = greedy(views, terms, deadline=started + GREEDY_SHARE * request.time_limit_s)
        small = _compact_size(views) <= self.exact_vars
        cat = None if small else applies(views, terms)
        if cat is None:
            bound, self._lam0 = envelope(views, terms)
        else:  # the cutting planes prove a far better bound within milliseconds
            bound, self._lam0 = -math.inf, None
        found = Plan(placements=list(placements), bound=bound, solved=False)
        try:
            if time.monotonic() >= deadline:
                found.why = f"{limit} ran out in the greedy placement and the first bound"
            elif small:
                self._say("solving the compact MIP")
                found.method = "the compact MIP (HiGHS)"
                self._exact(views, terms, found, request, deadline)
            elif cat is not None:
                self._say("cutting planes on the Lagrangian dual")
                found.method = "the cutting planes"
                answer = plan_portfolio(
                    views,
                    terms,
                    cat,
                    placements,
                    deadline=deadline,
                    relative_gap=request.relative_gap,
                    say=self._say,
                )
                found.placements = answer.placements
                found.bound = max(found.bound, answer.bound)
                found.solved = answer.solved
                found.duals = answer.duals
                if not answer.solved:
                    found.why = f"no plan better than the greedy one within {limit}"
            else:
                found.method = "column generation"
                ColumnGeneration(engine=self.engine, lam0=self._lam0, say=self._say).run(
                    views, terms, found, request, deadline
                )
                if not found.solved and not found.why:
                    found.why = (
                        f"{limit} ran out first"
                        if time.monotonic() >= deadline
                        else "no plan better than the greedy one"
                    )
        except SolverError as exc:
            self._say(f"solver failed ({exc}); answering with the greedy plan")
            if not math.isfinite(bound):  # the cutting planes skipped the envelope
                bound = envelope(views, terms)[0]
            found = Plan(
                placements=list(placements),
                bound=bound,
                solved=False,
                method=found.method,
                why=f"the solver failed ({exc})",
            )
        for i, v in enumerate(views):
            if found.placements[i] is None and placements[i] is None:
                infeasible[v.offer.id] = "no schedule satisfies the profile constraints"
        return _result(views, terms, found, placements, infeasible)

    # -- exact path ---------------------------------------------------------------------

    def _exact(
        self,
        views: Sequence[OfferView],
        terms: Terms,
        found: Plan,
        request: PlanRequest,
        deadline: float,
    ) -> None:
        problem, layout = build(views, terms, integer=True)
        left = deadline - time.monotonic()
        if left <= 0:
            found.why = "the time limit ran out while building the model"
            return
        sol = lp.solve(
            problem,
            time_limit_s=left,
            relative_gap=request.relative_gap,
            engine=self.engine,
        )
        found.bound = max(found.bound, sol.bound)
        if sol.values is None:
            found.why = (
                "HiGHS found no solution within the time limit"
                if sol.outcome == "timeout"
                else f"HiGHS answered {sol.outcome}"
            )
            return
        values = sol.values
        picks: list[tuple[int, int, np.ndarray | None]] = []
        for v, ch in zip(views, layout, strict=True):
            if not len(ch.y):
                picks.append((-1, 0, None))
                continue
            k = int(np.argmax(values[ch.y]))
            blk, start = int(ch.block[k]), int(ch.start[k])
            if is_boxed(v):
                picks.append((blk, start, None))
            else:
                tpl = template(v.blocks[blk], single=len(ch.y) == 1)
                x = np.zeros(v.blocks[blk].n)
                np.add.at(x, tpl.node_slot, tpl.node_val * values[ch.y[k] + tpl.node_col])
                picks.append((blk, start, x))
        flex = flex_of(values, problem, terms)
        adopt(views, terms, found, with_boxes(views, terms, picks, flex))
        found.solved = True

    # -- column generation --------------------------------------------------------------


# -- helpers -----------------------------------------------------------------------------


def _compact_size(views: Sequence[OfferView]) -> int:
    size = 0
    for v in views:
        for b in v.blocks:
            starts = (b.last_start - b.first_start) // v.offer.resolution_s + 1
            size += starts * (1 if not (b.coupled or v.priced) else 2 * b.n + 1)
    return size


def _result(
    views: Sequence[OfferView],
    terms: Terms,
    found: Plan,
    fallback: Sequence[Placement | None],
    infeasible: dict[str, str],
) -> PlanResult:
    placements = list(found.placements)
    replaced = 0
    for i, v in enumerate(views):
        p = placements[i]
        if p is None:
            placements[i] = fallback[i]
            continue
        # the protocol's verdict is final; snap to the bounds first (solver tolerances)
        b = v.blocks[p.block]
        energy = np.clip(p.energy, b.lower, b.upper)
        if protocol.check_assignment(
            v.offer, start=p.start, profile=b.profile, energy_kwh=energy.tolist()
        ):
            placements[i] = fallback[i]
            replaced += p is not fallback[i]
        else:
            placements[i] = Placement(p.block, p.start, energy)
    schedules = [
        PlannedSchedule(
            offer_id=v.offer.id,
            start=p.start,
            profile=v.blocks[p.block].profile,
            energy_kwh=p.energy.tolist(),
        )
        for v, p in zip(views, placements, strict=True)
        if p is not None
    ]
    objective = value_of(views, terms, placements)
    bound = found.bound
    # a bound above an achieved objective can only be solver tolerance
    if bound > objective:
        bound = objective if bound - objective <= 1e-6 * max(1.0, abs(objective)) else bound
    details = []
    status: Literal["optimal", "feasible", "fallback"]
    if not found.solved:
        status = "fallback"

        details.append(
            f"{found.method} fell back to the greedy placement of every offer: "
            f"{found.why or 'it found no plan'}"
        )
    elif objective - bound <= 1e-6 * max(1.0, abs(objective)):
        status = "optimal"
    else:
        status = "feasible"
    if replaced:
        details.append(
            f"{replaced} schedule(s) failed the protocol's check (solver tolerance) and were "
            "replaced by their greedy placement"
        )
    values = {}
    if found.duals is not None:
        values = {terms.t0 + t * terms.resolution_s: float(v) for t, v in enumerate(found.duals)}
    return PlanResult(
        schedules=schedules,
        objective=objective,
        bound=bound if math.isfinite(bound) else -math.inf,
        status=status,
        infeasible=infeasible,
        slot_values=values,
        detail="; ".join(details),
    )
