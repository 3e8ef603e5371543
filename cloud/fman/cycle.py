"""The planning cycle: plan accepted offers, send schedules, follow them through execution.

One worker of a group runs it at a time, the holder of the ``planner`` lease in the store
(renewed every step; taken over by another worker when it expires). Each step:

1. **plan**, at every planning interval (default one slot) and soon after offers arrive, change
   or leave: the open offers whose ``assignment_before`` lies beyond the delivery margin and
   within the horizon go to the planner with the target (minus the load already fixed: offers
   past their deadline, executing, or beyond the horizon at their default), prices and peak
   limits. Every planned assignment is checked with :func:`protocol.check_assignment`; an
   offer the planner could not place, or placed infeasibly, gets its default schedule,
   explicitly. An offer whose deadline is too near to plan and that has no schedule gets its
   default too. A schedule is stored as a new version only if it differs from the one in
   force, so re-planning does not flood agents with copies.
2. **deliver** schedules not yet handed to the broker (a worker killed in between resends them
   after its restart) and resend those an agent has not answered for a while, also after the
   offer's deadline while it runs: the agent answers a repeated version as the first time
   (its answer may have been lost), and refuses one it never had, which FMAN then records.
3. **advance** offers in time: ``executing`` from the schedule's start, ``executed`` once the
   last slot plus a grace period has passed, with the execution check (:mod:`.execution`)
   written per slot. A schedule the agent refused leaves the previous acknowledged version in
   force, or the default if there is none.

The delivery margin is ``deadline_margin_s`` of the clock plus ``deadline_margin_wall_s``
wall seconds (times the clock's speed), because at a hundred times real speed the time to plan
and deliver matters in simulated minutes.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace as replace_row
from typing import TYPE_CHECKING, Any

import protocol
from protocol import (
    FlexOffer,
    GateNotice,
    Schedule,
    align_up,
    check_assignment,
    start_window,
    topics,
)

from ..clock import Clock
from ..optim import FallbackPlanner, Planner, PlanRequest, PlanResult
from . import execution, planning, refusals, series
from .config import Config
from .counters import Counters
from .objective import OBJECTIVE_SERIES, objective_code
from .planners import load_planner
from .planning import curable, default_row
from .store import (
    ACTIVE_STATES,
    ExecutionSlot,
    MarketAward,
    NewSchedule,
    ScheduleKey,
    Store,
    StoredOffer,
    StoredSchedule,
)
from .trader import Trader

if TYPE_CHECKING:
    from .worker import Worker

#: Publishes a payload; ``done`` runs once the broker has it; ``False``: nothing queued.
Publish = Callable[..., bool]

log = logging.getLogger(__name__)

LEASE = "planner"
#: How often (wall seconds) the cycle wakes up to look for work.
STEP_S = 0.1


class Cycle:
    """The planning cycle of one worker; :meth:`run` it in its own thread."""

    def __init__(
        self,
        *,
        worker_id: str,
        config: Config,
        clock: Clock,
        store: Store,
        publish: Publish,
        counters: Counters,
        stopping: threading.Event,
        wall: Callable[[], float] = time.time,
        planner: Planner | None = None,
        notices: Mapping[str, GateNotice] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self.clock = clock
        self.store = store
        self.publish = publish
        self.stats = counters
        self.stopping = stopping
        self.wall = wall
        self.planner = planner or load_planner(self.config.planning.planner)
        self._sent: deque[ScheduleKey] = deque()
        self._in_flight: set[ScheduleKey] = set()
        self._offers: dict[tuple[str, int], FlexOffer] = {}
        self._change_seen: int | None = None
        self._replan_all = False
        #: wall seconds the planner recently took, for full and for other plans (a schedule
        #: must allow for them)
        self._solve_wall_s = {True: 0.0, False: 0.0}
        self._last_plan_wall = 0.0
        self._next_plan = -math.inf
        self._next_full = -math.inf
        #: an agent refused a schedule in force: its offer needs a plan again, without
        #: waiting for the next planning interval
        self._refused = False
        #: immediate re-plans per offer revision after curable refusals
        self._quick_replans: dict[tuple[str, int], int] = {}
        self._next_advance_wall = 0.0
        self._files: dict[str, float] = {}
        self.leading = False
        self._since = self.clock.now()
        #: bidding on the markets of ``[[market]]`` (:mod:`.trader`), with the gate calendars
        #: the worker's market inbox keeps
        self.trader = (
            Trader(cycle=self, notices=notices) if config.market and notices is not None else None
        )

    @classmethod
    def factory(cls, worker: Worker, store: Store) -> Cycle:
        """The cycle of ``worker``: its clock, its bus's publish, its counters."""
        return cls(
            worker_id=worker.id,
            config=worker.config,
            clock=worker.clock,
            store=store,
            publish=worker.bus.publish,
            counters=worker.stats,
            stopping=worker.stopping,
            notices=worker.market.notices if worker.market is not None else None,
        )

    @property
    def lease_ttl_s(self) -> float:
        pc = self.config.planning
        return pc.lease_ttl_s or max(10.0, 3 * pc.time_limit_s)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.store.acquire_lease(LEASE, self.worker_id, ttl_s=self.lease_ttl_s):
                    if not self.leading:
                        log.info(
                            "worker %s holds the planner lease (planner %s)",
                            self.worker_id,
                            self.config.planning.planner,
                        )
                        self.leading = True
                    self.step()
                elif self.leading:
                    log.warning("worker %s lost the planner lease", self.worker_id)
                    self.leading = False
            except Exception:
                log.exception("planning step failed; retrying")
                self.stats.add("cycle.errors")
                stop.wait(1.0)
            stop.wait(STEP_S if self.leading else 1.0)
        if self.leading:
            self.store.release_lease(LEASE, self.worker_id)

    # -- one step ------------------------------------------------------------------------------

    def step(self) -> None:
        now, wall = self.clock.now(), self.wall()
        pc = self.config.planning
        self._load_series_files()
        change = self.store.counter("offers")
        changed = change != self._change_seen or self._refused
        due = now >= self._next_plan
        if (
            due
            or (changed and wall - self._last_plan_wall >= pc.replan_min_wall_s)
            # an offer with no schedule whose deadline is near cannot wait for the next turn
            or (changed and self.store.unscheduled_before(now + self.margin_s()))
        ):
            self._change_seen, self._refused = change, False
            self._last_plan_wall = self.wall()
            full = (due and now >= self._next_full) or self._replan_all
            self._replan_all = False
            if due:
                interval = self.config.interval_s
                self._next_plan = (now // interval + 1) * interval
            if full:
                every = pc.full_interval_s or self.config.interval_s
                self._next_full = (now // every + 1) * every
            self._guarded("plan", self.plan, now, full)
        if self.trader is not None:
            self._guarded("market", self.trader.step, self.clock.now())
        self._guarded("deliver", self.deliver)
        if wall >= self._next_advance_wall:
            self._next_advance_wall = wall + 0.5
            self._guarded("advance", self.advance, self.clock.now())

    def _guarded(self, what: str, fn: Any, *args: Any) -> None:
        """Run one part of the step; a failure is logged and counted, and does not keep the
        other parts (delivery, execution tracking) from running."""
        try:
            fn(*args)
        except Exception:
            log.exception("planning cycle: %s failed", what)
            self.stats.add("cycle.errors")
            self.stats.add(f"cycle.errors.{what}")

    def _load_series_files(self) -> None:
        if "objective" not in self._files:  # what the plans optimise, for ``atp portfolio``
            self.store.put_series(OBJECTIVE_SERIES, objective_code(self.config.objective))
            self._files["objective"] = 0.0
        for name, src in (
            ("target", self.config.objective.target),
            ("prices", self.config.objective.prices),
        ):
            if not src.file:
                continue
            try:
                mtime = os.stat(src.file).st_mtime
                if self._files.get(name) == mtime:
                    continue
                self.store.put_series(name, series.load_file(src.file))
                self._files[name] = mtime
            except (OSError, series.SeriesError) as exc:
                if name not in self._files:
                    log.error("objective %s: %s", name, exc)
                    self._files[name] = -1.0

    def _offer(self, row: StoredOffer) -> FlexOffer:
        key = (row.id, row.revision)
        offer = self._offers.get(key)
        if offer is None:
            assert row.payload is not None, "an offer in an active state has its payload"
            offer = protocol.decode(row.payload, expect="offer", check=False).body
            if len(self._offers) > 200_000:
                self._offers.clear()
            self._offers[key] = offer
        return offer

    def market_changed(self, *, awarded: bool) -> None:
        """A gate's result is in: plan at the next step. When awards fixed some schedules,
        plan all the rest around them (an incremental plan would leave every settled
        schedule as it is, also one that now undoes an award at its node)."""
        self._change_seen = None
        self._replan_all = self._replan_all or awarded

    def _awards(self, now: float) -> list[MarketAward]:
        """The market awards around the planning horizon (none without markets)."""
        if self.trader is None:
            return []
        horizon = int(self.config.planning.horizon_s)
        return self.store.market_awards(int(now) - horizon, int(now) + 2 * horizon)

    def margin_s(self) -> float:
        pc = self.config.planning
        return pc.deadline_margin_s + self.clock.speed * pc.deadline_margin_wall_s

    # -- plan ----------------------------------------------------------------------------------

    def plan(self, now: float, full: bool = True) -> None:
        """Plan the open offers whose deadline lies within the horizon and beyond the delivery
        margin (:func:`.planning.select`), solve, choose what to publish
        (:func:`.planning.decide`, :func:`.planning.publication`) and store it."""
        pc, res = self.config.planning, self.config.planning.resolution_s
        margin = self.margin_s()
        # a start the schedule can still reach, also once the planner has answered
        solve_s = self.clock.speed * self._solve_wall_s[full]
        earliest = align_up(int(now + margin + solve_s), res)
        rows = self.store.offers_in(ACTIVE_STATES)
        current = self.store.current_schedules()
        offers = [(row, self._offer(row)) for row in rows]
        # offers carrying market awards keep them (the planner does not move them), and the
        # rest must not undo at their nodes what the awards sold
        awards = self._awards(now)
        sel = planning.select(
            offers,
            current,
            now=now,
            earliest=earliest,
            horizon_s=pc.horizon_s,
            full=full,
            resolution_s=res,
            locked=frozenset(a.offer_id for a in awards),
        )
        new_rows = list(sel.defaults)
        if sel.plannable:
            awarded = planning.awarded_per_node(
                ((a.offer_id, a.slot_start, a.kwh) for a in awards),
                {o.id: o for _, o in offers},
                resolution_s=res,
            )
            request = planning.request_for(
                sel,
                objective=self.config.objective,
                target=self.store.series("target"),
                prices=self.store.series("prices"),
                resolution_s=res,
                time_limit_s=pc.time_limit_s,
                bands=planning.award_bands(sel, awarded, resolution_s=res) if awarded else None,
            )
            result = self._solve(request, full)
            decision = planning.decide(
                sel,
                request,
                result,
                current=current,
                change_cost=pc.change_cost,
                tolerance_kwh=pc.change_tolerance_kwh,
            )
            new_rows += decision.rows
            self.stats.add("plan.infeasible_result", decision.infeasible)
            self.stats.add("plan.changes_offered", decision.changes_offered)
            self.stats.add("plan.changes_made", decision.changed)
            self.stats.add("plan.runs")
            self.stats.add("plan.full" if full else "plan.incremental")
            self.stats.set("plan.offers", len(sel.plannable))
        # never issue a schedule that can no longer reach its agent before the deadline: a
        # default the agent then runs by itself is recorded as such
        out = planning.publication(
            self._rebase(new_rows),
            {r.id: r.assignment_before or 0 for r in rows},
            in_time=self.clock.now() + margin,
        )
        self.stats.add("plan.too_late", out.too_late)
        issued: list[StoredSchedule] = []
        implicit: list[StoredSchedule] = []
        if out.send:
            issued = self.store.add_schedules(out.send, now=now, holder=self.worker_id)
            self.stats.add("schedules.issued", len(issued))
            self.stats.add("schedules.default", sum(1 for s in issued if s.kind == "default"))
        if out.implicit:
            implicit = self.store.add_schedules(
                out.implicit, now=now, holder=self.worker_id, status="implicit"
            )
            self.stats.add("schedules.implicit", len(implicit))
        if sel.plannable:
            log.info(
                "plan (%s): %d offers, objective %.6g (%s), %s in %.2f s; %d schedules issued "
                "(%d defaults), %d recorded as run by the agent, %d could not be placed",
                "full" if full else "incremental",
                len(sel.plannable),
                result.objective,
                _objective_words(request),
                result.status,
                self.stats[f"plan.{'full' if full else 'incremental'}_last_ms"] / 1000,
                len(issued),
                sum(1 for s in issued if s.kind == "default"),
                len(implicit),
                len(result.infeasible),
            )

    def _rebase(self, rows: list[NewSchedule]) -> list[NewSchedule]:
        """Schedules planned for a revision that its agent has replaced while the planner ran:
        kept, for the new revision, if they fit it (the agent takes a schedule that fits its
        current revision); dropped otherwise (the next plan takes the new revision)."""
        heads = self.store.offer_heads([r.offer_id for r in rows])
        out = []
        for r in rows:
            head = heads.get(r.offer_id)
            if head is None or head.revision == r.offer_revision:
                out.append(r)  # (an offer that left is skipped where the row is stored)
                continue
            if head.state not in ("accepted", "assigned"):
                continue
            stored = self.store.offer(r.offer_id)
            if stored is None or stored.payload is None:
                continue
            offer = self._offer(stored)
            if offer.revision == head.revision and not check_assignment(
                offer, start=r.start, profile=r.profile, energy_kwh=r.energy_kwh
            ):
                out.append(replace_row(r, offer_revision=head.revision))
                self.stats.add("plan.rebased")
            else:
                self.stats.add("plan.outdated")
        return out

    def planners(self, request: PlanRequest) -> FallbackPlanner:
        """The chain for ``request``: the configured planner, through aggregation above
        ``planning.aggregate_above`` offers, then the greedy heuristic, then the defaults."""
        from ..optim import AggregatingPlanner, GreedyPlanner

        first = self.planner
        above = self.config.planning.aggregate_above
        if above and len(request.offers) > above:
            first = AggregatingPlanner(inner=first)
        return FallbackPlanner(stages=[first, GreedyPlanner()])

    def _solve(self, request: PlanRequest, full: bool) -> PlanResult:
        t0 = self.wall()
        chain = self.planners(request)
        if type(chain.stages[0]).__name__ == "AggregatingPlanner":
            self.stats.add("plan.aggregated")
        answer = chain.plan_chain(request)
        took = self.wall() - t0
        self.stats.add("plan.planner_failed", len(answer.failures))
        self.stats.add("plan.infeasible_result", answer.rejected)
        kind = "full" if full else "incremental"
        self.stats.set(f"plan.{kind}_last_ms", round(took * 1000, 1))
        self.stats.set_max(f"plan.{kind}_max_ms", round(took * 1000, 1))
        # what the next plan of this kind should allow for: the longest recent solve, fading
        self._solve_wall_s[full] = max(took, 0.8 * self._solve_wall_s[full])
        result = answer.result
        if answer.defaulted or result.infeasible:
            self.stats.add("plan.unplaceable", len(answer.defaulted) + len(result.infeasible))
        return result

    # -- deliver ---------------------------------------------------------------------------------

    def deliver(self) -> None:
        done = []
        while self._sent:
            key = self._sent.popleft()
            self._in_flight.discard(key)
            done.append(key)
        if done:
            self.store.mark_sent(done, self.wall())
            self.stats.add("schedules.sent", len(done))
        resend_before = self.wall() - self.config.planning.resend_after_wall_s
        now = int(self.clock.now())
        in_time = now + self.margin_s()
        late = []
        for s in self.store.unsent_schedules(resend_before=resend_before, now=now):
            key = s.key
            if key in self._in_flight:
                continue
            if s.deadline <= in_time and s.status == "pending":
                # it would reach the agent after the deadline, to be refused: the agent keeps
                # the version before (or runs its default), and FMAN records the same
                late.append(key)
                continue
            # (a schedule sent and never answered goes again even after the deadline: the
            # agent answers it as it did the first time, or refuses it if it never had it)
            if s.status == "sent":
                self.stats.add("schedules.resent")
            payload = protocol.encode(
                Schedule(
                    offer_id=s.offer_id,
                    version=s.version,
                    start=s.start,
                    profile=s.profile,
                    energy_kwh=s.energy_kwh,
                    issued_at=now,
                    offer_revision=s.offer_revision,
                ),
                ts=now,
                msg_id=f"{s.offer_id}:v{s.version}",
            )
            self._in_flight.add(key)
            ok = self.publish(
                topics.agent_topic(s.issuer, "schedule"),
                payload,
                qos=self.config.worker.qos,
                done=lambda k=key: self._sent.append(k),
                stop=self.stopping,
            )
            if not ok:
                self._in_flight.discard(key)
                break
        if late:
            self.store.mark_late(late, self.wall())
            self.stats.add("schedules.late", len(late))

    # -- advance ---------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move offers along in time; judge each offer's execution once its last slot and
        the grace period for late readings have passed."""
        self._after_refusals(now)
        grace = self.config.execution.grace_s
        current = self.store.current_schedules()
        starting, finished = [], []
        for row in self.store.offers_in(ACTIVE_STATES):
            offer = self._offer(row)
            sched = current.get(offer.id)
            if sched is None and now >= (row.assignment_before or 0):
                # no schedule by the deadline (the worker was down): the agent runs its default
                self.store.add_schedules(
                    [default_row(offer)], now=now, holder=self.worker_id, status="implicit"
                )
                self.stats.add("schedules.implicit")
                sched = self.store.current_schedules([offer.id]).get(offer.id)
            start = sched.start if sched else offer.default.start
            n = len(sched.energy_kwh) if sched else len(offer.default.energy_kwh)
            if row.state != "executing" and now >= start:
                starting.append(offer.id)
            # judged once the grace for late readings has passed since the schedule ended
            # and since this worker took over (readings queued meanwhile arrive first)
            if now >= max(start + n * offer.resolution_s, self._since) + grace:
                finished.append((offer, sched))
        if starting:
            self.store.mark_executing(starting, at=now)
        for offer, sched in finished:
            self._check(offer, sched, now=now)
        self.stats.add("offers.executed", len(finished))

    def _check(self, offer: FlexOffer, sched: StoredSchedule | None, *, now: float) -> None:
        ex, res = self.config.execution, offer.resolution_s
        d = offer.default
        start = sched.start if sched else d.start
        energy = sched.energy_kwh if sched else d.energy_kwh
        n = len(energy)
        window_end = max(start, start_window(offer)[1]) + (n + 4) * res
        found = self.store.readings_of(
            offer_id=offer.id,
            agent=offer.issuer,
            device=offer.device,
            start=start,
            end=start + n * res,
        )
        tagged, untagged = found.tagged, found.untagged
        moved = None
        if (sched is None or sched.status == "implicit") and tagged:
            # a default the agent took on its own: it may have shifted it to the slot it was
            # in; its readings, tagged with the offer, show where it really ran
            first = min(r.start for r in tagged) // res * res
            if (
                first != start
                and first <= window_end
                and not check_assignment(
                    offer, start=first, profile=d.profile, energy_kwh=list(energy)
                )
            ):
                moved, start = first, first
                untagged = self.store.readings_of(
                    offer_id=offer.id,
                    agent=offer.issuer,
                    device=offer.device,
                    start=start,
                    end=start + n * res,
                ).untagged
        scheduled = execution.per_slot(start, energy, res)
        rows = execution.check(
            scheduled=scheduled,
            baseline=execution.per_slot(d.start, d.energy_kwh, res),
            metered=execution.metered_per_slot(
                ((r.start, r.duration_s, r.energy_kwh) for r in tagged + untagged), res
            ),
            tolerance_kwh=ex.tolerance_kwh,
            tolerance_rel=ex.tolerance_rel,
        )
        metered = sum(1 for r in rows if r.slot in scheduled and r.metered_kwh is not None)
        flagged = sum(1 for r in rows if r.flagged)
        with self.store.write():
            if moved is not None and sched is not None:
                self.store.move_schedule(sched.key, moved)
            self.store.put_execution(
                offer.id,
                [
                    ExecutionSlot(
                        slot=r.slot,
                        scheduled_kwh=r.scheduled_kwh,
                        baseline_kwh=r.baseline_kwh,
                        metered_kwh=r.metered_kwh,
                        flagged=r.flagged,
                    )
                    for r in rows
                ],
            )
            self.store.set_execution_summary(
                offer.id, metered=metered, flagged=flagged, executed_at=now
            )

    def _after_refusals(self, now: float) -> None:
        """A refused current schedule: the agent keeps its last acknowledged version, or runs
        its default; FMAN records the same. Where a new plan can cure the refusal (planned
        for a revision the agent has replaced, or a start that has begun), the offer is
        planned again at once, a few times at most; other refusals wait for the next
        planning interval, so an agent that refuses everything cannot make FMAN spin."""
        for s in self.store.refused_current():
            version = self.store.fall_back(s.offer_id, s.version)
            self.stats.add("schedules.refused")
            self.stats.add(refusals.key("schedule", refusals.first_code(s.reason)))
            key = (s.offer_id, s.offer_revision)
            quick = self._quick_replans.get(key, 0)
            if s.status == "rejected" and quick < QUICK_REPLANS and curable(s.reason):
                if len(self._quick_replans) > 100_000:  # offers long closed: start afresh
                    self._quick_replans.clear()
                self._quick_replans[key] = quick + 1
                self._refused = True
            stored = self.store.offer(s.offer_id) if version == 0 else None
            if stored is not None and stored.payload is not None:
                offer = self._offer(stored)
                self.store.add_schedules(
                    [default_row(offer)],
                    now=now,
                    holder=self.worker_id,
                    status="implicit",
                    states=("accepted", "assigned", "executing", "executed"),
                )


#: Immediate re-plans of one offer after refusals a new plan can cure.
QUICK_REPLANS = 3


def _objective_words(request: PlanRequest) -> str:
    """The objective in force, as the log says it: balancing without a target balances the
    portfolio to zero, which an operator who forgot the target must be told."""
    if request.objective == "balance" and not request.target_kwh:
        return "balance to zero: no target series"
    if request.objective == "profit" and not request.weights:
        return "profit: the objective is minus the EUR earned, net of asks"
    return request.objective
