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

import json
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import replace as replace_row
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

import protocol
from protocol import FlexOffer, Schedule, align_up, check_assignment, start_window, topics

from ..optim import DefaultPlanner, PlannedSchedule, PlanRequest, PlanResult
from . import execution, refusals, series, stability
from .greedy import GreedyPlanner
from .planners import load_planner
from .store import (
    ACTIVE_STATES,
    ExecutionSlot,
    NewSchedule,
    ScheduleKey,
    Store,
    StoredOffer,
    StoredSchedule,
)

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger(__name__)

LEASE = "planner"
#: How often (wall seconds) the cycle wakes up to look for work.
STEP_S = 0.1


class Cycle:
    """The planning cycle of one worker; :meth:`run` it in its own thread."""

    def __init__(self, *, worker: Worker, store: Store) -> None:
        self.worker = worker
        self.config = worker.config
        self.clock = worker.clock
        self.store = store
        self.stats = worker.stats
        self.planner = load_planner(self.config.planning.planner)
        self._sent: deque[ScheduleKey] = deque()
        self._in_flight: set[ScheduleKey] = set()
        self._offers: dict[tuple[str, int], FlexOffer] = {}
        self._change_seen: int | None = None
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

    @classmethod
    def factory(cls, worker: Worker, store: Store) -> Cycle:
        return cls(worker=worker, store=store)

    @property
    def lease_ttl_s(self) -> float:
        pc = self.config.planning
        return pc.lease_ttl_s or max(10.0, 3 * pc.time_limit_s)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.store.acquire_lease(LEASE, self.worker.id, ttl_s=self.lease_ttl_s):
                    if not self.leading:
                        log.info(
                            "worker %s holds the planner lease (planner %s)",
                            self.worker.id,
                            self.config.planning.planner,
                        )
                        self.leading = True
                    self.step()
                elif self.leading:
                    log.warning("worker %s lost the planner lease", self.worker.id)
                    self.leading = False
            except Exception:
                log.exception("planning step failed; retrying")
                self.stats["cycle.errors"] += 1
                stop.wait(1.0)
            stop.wait(STEP_S if self.leading else 1.0)
        if self.leading:
            self.store.release_lease(LEASE, self.worker.id)

    # -- one step ------------------------------------------------------------------------------

    def step(self) -> None:
        now, wall = self.clock.now(), time.time()
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
            self._last_plan_wall = time.time()
            full = due and now >= self._next_full
            if due:
                interval = self.config.interval_s
                self._next_plan = (now // interval + 1) * interval
            if full:
                every = pc.full_interval_s or self.config.interval_s
                self._next_full = (now // every + 1) * every
            self._guarded("plan", self.plan, now, full)
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
            self.stats["cycle.errors"] += 1
            self.stats[f"cycle.errors.{what}"] += 1

    def _load_series_files(self) -> None:
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

    def margin_s(self) -> float:
        pc = self.config.planning
        return pc.deadline_margin_s + self.clock.speed * pc.deadline_margin_wall_s

    # -- plan ----------------------------------------------------------------------------------

    def plan(self, now: float, full: bool = True) -> None:
        """Plan the open offers whose deadline lies within the horizon and beyond the delivery
        margin. ``full``: every such offer, and the result replaces schedules in force only
        where that pays (:mod:`.stability`); otherwise only offers that need a schedule (none
        in force, a default, or one that no longer fits their revision), the others counted
        at their schedules in force."""
        pc, res = self.config.planning, self.config.planning.resolution_s
        margin = self.margin_s()
        # a start the schedule can still reach, also once the planner has answered
        solve_s = self.clock.speed * self._solve_wall_s[full]
        earliest = align_up(int(now + margin + solve_s), res)
        originals: dict[str, FlexOffer] = {}
        rows = self.store.offers_in(ACTIVE_STATES)
        current = self.store.current_schedules()
        plannable: list[FlexOffer] = []
        in_force: dict[str, PlannedSchedule] = {}
        fixed: dict[int, float] = {}
        fixed_by_node: dict[str, dict[int, float]] = {}
        new_rows: list[NewSchedule] = []
        for row in rows:
            offer = self._offer(row)
            sched = current.get(offer.id)
            open_ = row.state in ("accepted", "assigned")
            deadline = row.assignment_before or 0
            if (
                open_
                and earliest <= deadline <= now + pc.horizon_s
                and (sched is None or sched.start > earliest)
                and start_window(offer)[1] >= earliest
            ):
                settled = sched is not None and sched.kind == "planned" and _fits(offer, sched)
                narrowed = _narrowed(offer, earliest)
                if (full or not settled) and narrowed is not None:
                    plannable.append(narrowed)
                    originals[offer.id] = offer
                    if settled:
                        in_force[offer.id] = _planned(sched)
                    continue
            elif (
                open_
                and now < deadline <= now + pc.horizon_s
                and (sched is None or not _fits(offer, sched))
            ):
                # too close to its deadline (or its start) to plan, and nothing valid in
                # force: the default. Sent if it can still arrive in time, else recorded as
                # what the agent runs by itself. Offers beyond the horizon wait, counted at
                # their default.
                new_rows.append(_default_row(offer))
                sched = None
            if sched is not None:
                start, energy = sched.start, sched.energy_kwh
            else:
                start, energy = offer.default.start, offer.default.energy_kwh
            for t, e in execution.per_slot(start, energy, offer.resolution_s, res).items():
                fixed[t] = fixed.get(t, 0.0) + e
                node = fixed_by_node.setdefault(offer.grid_node, {})
                node[t] = node.get(t, 0.0) + e
        if plannable:
            request = self._request(plannable, fixed, fixed_by_node, res)
            result = self._solve(request, full)
            chosen = {s.offer_id: s for s in result.schedules}
            defaulted: set[str] = set()
            for offer in (originals[o.id] for o in plannable):
                s = chosen.get(offer.id)
                if s is not None and check_assignment(
                    offer, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
                ):
                    self.stats["plan.infeasible_result"] += 1
                    s = None
                if s is None:  # the planner could not place it: its default, explicitly
                    d = offer.default
                    defaulted.add(offer.id)
                    chosen[offer.id] = PlannedSchedule(
                        offer_id=offer.id,
                        start=d.start,
                        profile=d.profile,
                        energy_kwh=list(d.energy_kwh),
                    )
            choice = stability.choose(
                request,
                in_force=in_force,
                planned={oid: chosen[oid] for oid in originals},
                change_cost=pc.change_cost,
                tolerance_kwh=pc.change_tolerance_kwh,
            )
            self.stats["plan.changes_offered"] += choice.changes_offered
            self.stats["plan.changes_made"] += choice.changed
            for oid, s in choice.adopted.items():
                offer = originals[oid]
                old = current.get(oid)
                new = NewSchedule(
                    offer_id=oid,
                    issuer=offer.issuer,
                    offer_revision=offer.revision,
                    start=s.start,
                    profile=s.profile,
                    energy_kwh=[float(e) for e in s.energy_kwh],
                    kind="default" if oid in defaulted else "planned",
                )
                if old is not None and _same(old, new):
                    continue
                new_rows.append(new)
            self.stats["plan.runs"] += 1
            self.stats["plan.full" if full else "plan.incremental"] += 1
            self.stats["plan.offers"] = len(plannable)
        # never issue a schedule that can no longer reach its agent before the deadline: a
        # default the agent then runs by itself is recorded as such
        new_rows = self._rebase(new_rows)
        in_time = self.clock.now() + margin
        deadlines = {r.id: r.assignment_before or 0 for r in rows}
        send = [r for r in new_rows if deadlines[r.offer_id] > in_time]
        late = [r for r in new_rows if deadlines[r.offer_id] <= in_time]
        self.stats["plan.too_late"] += sum(1 for r in late if r.kind != "default")
        late = [r for r in late if r.kind == "default"]
        issued: list[StoredSchedule] = []
        implicit: list[StoredSchedule] = []
        if send:
            issued = self.store.add_schedules(send, now=now, holder=self.worker.id)
            self.stats["schedules.issued"] += len(issued)
            self.stats["schedules.default"] += sum(1 for s in issued if s.kind == "default")
        if late:
            implicit = self.store.add_schedules(
                late, now=now, holder=self.worker.id, status="implicit"
            )
            self.stats["schedules.implicit"] += len(implicit)
        if plannable:
            log.info(
                "plan (%s): %d offers, objective %.6g (%s), %s in %.2f s; %d schedules issued "
                "(%d defaults), %d recorded as run by the agent, %d could not be placed",
                "full" if full else "incremental",
                len(plannable),
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
                self.stats["plan.rebased"] += 1
            else:
                self.stats["plan.outdated"] += 1
        return out

    def _request(
        self,
        offers: list[FlexOffer],
        fixed: dict[int, float],
        fixed_by_node: dict[str, dict[int, float]],
        res: int,
    ) -> PlanRequest:
        obj = self.config.objective
        target = self.store.series("target")
        residual = {t: v - fixed.get(t, 0.0) for t, v in target.items()}
        peak = {
            node: max(0.0, kw - max(fixed_by_node.get(node, {0: 0.0}).values()) * 3600 / res)
            for node, kw in obj.peak_kw.items()
        }
        return PlanRequest(
            offers=offers,
            resolution_s=res,
            objective=obj.kind,
            target_kwh=residual,
            prices_eur_per_kwh=self.store.series("prices"),
            peak_kw_by_node=peak,
            weights=obj.weights,
            time_limit_s=self.config.planning.time_limit_s,
        )

    def _solve(self, request: PlanRequest, full: bool) -> PlanResult:
        t0 = time.perf_counter()
        for planner in (self.planner, GreedyPlanner(), DefaultPlanner()):
            try:
                result = planner.plan(request)
                break
            except Exception:
                log.exception("planner %s failed; falling back", type(planner).__name__)
                self.stats["plan.planner_failed"] += 1
        took = time.perf_counter() - t0
        kind = "full" if full else "incremental"
        self.stats[f"plan.{kind}_last_ms"] = round(took * 1000, 1)
        self.stats[f"plan.{kind}_max_ms"] = max(
            self.stats[f"plan.{kind}_max_ms"], round(took * 1000, 1)
        )
        # what the next plan of this kind should allow for: the longest recent solve, fading
        self._solve_wall_s[full] = max(took, 0.8 * self._solve_wall_s[full])
        if result.infeasible:
            self.stats["plan.unplaceable"] += len(result.infeasible)
        return result

    # -- deliver ---------------------------------------------------------------------------------

    def deliver(self) -> None:
        done = []
        while self._sent:
            key = self._sent.popleft()
            self._in_flight.discard(key)
            done.append(key)
        if done:
            self.store.mark_sent(done, time.time())
            self.stats["schedules.sent"] += len(done)
        resend_before = time.time() - self.config.planning.resend_after_wall_s
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
                self.stats["schedules.resent"] += 1
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
            ok = self.worker.bus.publish(
                topics.agent_topic(s.issuer, "schedule"),
                payload,
                qos=self.config.worker.qos,
                done=lambda k=key: self._sent.append(k),
                stop=self.worker.stopping,
            )
            if not ok:
                self._in_flight.discard(key)
                break
        if late:
            self.store.mark_late(late, time.time())
            self.stats["schedules.late"] += len(late)

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
                    [_default_row(offer)], now=now, holder=self.worker.id, status="implicit"
                )
                self.stats["schedules.implicit"] += 1
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
        self.stats["offers.executed"] += len(finished)

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
            self.stats["schedules.refused"] += 1
            self.stats[refusals.key("schedule", refusals.first_code(s.reason))] += 1
            key = (s.offer_id, s.offer_revision)
            quick = self._quick_replans.get(key, 0)
            if s.status == "rejected" and quick < QUICK_REPLANS and _curable(s.reason):
                if len(self._quick_replans) > 100_000:  # offers long closed: start afresh
                    self._quick_replans.clear()
                self._quick_replans[key] = quick + 1
                self._refused = True
            stored = self.store.offer(s.offer_id) if version == 0 else None
            if stored is not None and stored.payload is not None:
                offer = self._offer(stored)
                self.store.add_schedules(
                    [_default_row(offer)],
                    now=now,
                    holder=self.worker.id,
                    status="implicit",
                    states=("accepted", "assigned", "executing", "executed"),
                )


#: Immediate re-plans of one offer after refusals a new plan can cure.
QUICK_REPLANS = 3
#: Refusal codes a new plan can cure (see ``agent.core``).
CURABLE = frozenset({"stale_revision", "infeasible", "start_passed"})


def _objective_words(request: PlanRequest) -> str:
    """The objective in force, as the log says it: balancing without a target balances the
    portfolio to zero, which an operator who forgot the target must be told."""
    if request.objective == "balance" and not request.target_kwh:
        return "balance to zero: no target series"
    return request.objective


def _curable(reason_json: str) -> bool:
    try:
        codes = {r.get("code") for r in json.loads(reason_json or "[]")}
    except (ValueError, AttributeError):
        return False
    return bool(codes) and codes <= CURABLE


def _default_row(offer: FlexOffer) -> NewSchedule:
    d = offer.default
    return NewSchedule(
        offer_id=offer.id,
        issuer=offer.issuer,
        offer_revision=offer.revision,
        start=d.start,
        profile=d.profile,
        energy_kwh=list(d.energy_kwh),
        kind="default",
    )


def _same(old: StoredSchedule, new: NewSchedule) -> bool:
    return (
        old.start == new.start
        and old.profile == new.profile
        and len(old.energy_kwh) == len(new.energy_kwh)
        and all(abs(a - b) <= 1e-6 for a, b in zip(old.energy_kwh, new.energy_kwh, strict=True))
    )


def _narrowed(offer: FlexOffer, earliest: int) -> FlexOffer | None:
    """``offer`` as the planner may place it: never at a start before ``earliest`` (when the
    schedule could reach the agent). Its default moves along where the window's start does
    (the planner requires a valid offer, with a feasible default); ``None`` if the default
    cannot start that late."""
    lo = start_window(offer)[0]
    if lo >= earliest:
        return offer
    d = offer.default
    narrowed = replace(
        offer, start_after=earliest, default=replace(d, start=max(d.start, earliest))
    )
    # built from a decoded offer: its numbers are known to be finite
    return None if protocol.validate_offer(narrowed, types_checked=True) else narrowed


def _planned(s: StoredSchedule) -> PlannedSchedule:
    return PlannedSchedule(
        offer_id=s.offer_id, start=s.start, profile=s.profile, energy_kwh=list(s.energy_kwh)
    )


def _fits(offer: FlexOffer, s: StoredSchedule) -> bool:
    return not check_assignment(offer, start=s.start, profile=s.profile, energy_kwh=s.energy_kwh)
