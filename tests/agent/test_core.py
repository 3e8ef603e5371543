"""The core's protocol rules, on a real SQLite store: offers out, schedules in, deadlines."""

from __future__ import annotations

import msgpack
import pytest

import protocol
from agent import revision
from agent.core import Core, OfferSource
from agent.drivers.base import Measurement
from agent.generators.base import OfferContext
from agent.store import Store
from protocol import Ack, Reject, Schedule, topics
from tests.agent.helpers import T0, StepClock
from tests.agent.plugins import CycleOffer

AGENT = "core-test"
M = Measurement(ts=T0, power_w=0.0, energy_kwh=0.0)


@pytest.fixture
def setup(tmp_path):
    store = Store(path=tmp_path / "core.db", durability="normal")
    # everything ever queued, also what an answer has since taken out of the outbox
    store.db.execute("CREATE TABLE sent_log AS SELECT id, topic, payload FROM outbox WHERE 0")
    store.db.execute(
        "CREATE TRIGGER log_sent AFTER INSERT ON outbox BEGIN "
        "INSERT INTO sent_log VALUES (new.id, new.topic, new.payload); END"
    )
    clock = StepClock(T0 + 60)
    gone = tmp_path / "gone"
    gen = CycleOffer({"slots": 2, "cycle_s": 3600, "gone_file": str(gone)})
    core = Core(
        agent_id=AGENT, store=store, clock=clock, sources=[OfferSource(device="d1", generator=gen)]
    )
    yield store, clock, core, gone
    store.close()


def sent(store: Store, channel: str) -> list[protocol.Message]:
    """Every message queued on ``channel``, in order (answered ones included)."""
    topic = topics.agent_topic(AGENT, channel)
    rows = store.db.execute("SELECT payload FROM sent_log WHERE topic = ? ORDER BY id", [topic])
    return [protocol.decode(payload) for (payload,) in rows.fetchall()]


def schedule_payload(offer, *, version=1, start=None, energy=(0.3, 0.3), msg_id=None) -> bytes:
    body = Schedule(
        offer_id=offer.id,
        version=version,
        start=offer.start_after if start is None else start,
        energy_kwh=list(energy),
    )
    return protocol.encode(body, ts=T0, msg_id=msg_id)


def deliver(core: Core, channel: str, payload: bytes) -> None:
    core.handle(topics.agent_topic(AGENT, channel), payload)


def first_offer(store, clock, core):
    core.refresh(int(clock.now()), {"d1": M})
    (msg,) = sent(store, "offer")
    return msg.body


def test_new_offer_is_stored_and_queued_once(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    assert offer.issuer == AGENT and offer.revision == 0
    assert protocol.validate_offer(offer) == []
    assert store.offer(offer.id).state == "offered"
    core.refresh(int(clock.now()) + 300, {"d1": M})  # same content: no update
    assert len(sent(store, "offer")) == 1


def accept(core: Core, offer, revision: int = 0) -> None:
    ack = Ack(ref_kind="offer", ref_id=offer.id, revision=revision)
    deliver(core, "ack", protocol.encode(ack, ts=T0))


def test_changed_prediction_is_an_update_with_a_higher_revision(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    gen = core.sources[0].generator
    gen.upper = 0.5
    core.refresh(int(clock.now()) + 300, {"d1": M})
    assert len(sent(store, "offer")) == 1  # FMAN has not answered revision 0 yet: no update
    accept(core, offer)
    core.refresh(int(clock.now()) + 300, {"d1": M})
    first, update = sent(store, "offer")
    assert update.body.id == offer.id and update.body.revision == 1
    assert update.body.profiles[0].upper_kwh == [0.5, 0.5]
    assert update.id != first.id
    assert store.offer(offer.id).offer.revision == 1
    accept(core, offer, revision=1)
    gen.upper = 0.51  # drift within the tolerance: the offer stands
    core.refresh(int(clock.now()) + 600, {"d1": M})
    assert len(sent(store, "offer")) == 2 and core.stats.drift_ignored == 1
    gen.upper = 0.7
    core.refresh(offer.acceptance_before, {"d1": M})  # too late to be accepted: no update
    assert len(sent(store, "offer")) == 2


def test_device_that_leaves_gets_its_offer_withdrawn(setup):
    store, clock, core, gone = setup
    offer = first_offer(store, clock, core)
    gone.touch()
    core.refresh(int(clock.now()) + 300, {"d1": M})
    (w,) = sent(store, "offer/delete")
    assert w.body.offer_id == offer.id
    assert store.offer(offer.id).state == "withdrawn"
    # a schedule for it now is refused with the reason
    deliver(core, "schedule", schedule_payload(offer))
    (rej,) = sent(store, "schedule/ack")
    assert isinstance(rej.body, Reject) and rej.body.reasons[0].code == "withdrawn"


def test_device_without_a_fresh_measurement_keeps_its_offer(setup):
    store, clock, core, gone = setup
    first_offer(store, clock, core)
    gone.touch()
    core.refresh(int(clock.now()) + 300, {"d1": None})  # the device did not answer
    assert sent(store, "offer/delete") == []


def test_feasible_schedule_is_taken_acked_and_redelivery_changes_nothing(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    deliver(core, "ack", protocol.encode(Ack(ref_kind="offer", ref_id=offer.id), ts=T0))
    assert store.offer(offer.id).state == "accepted"
    payload = schedule_payload(offer, msg_id="s-1")
    deliver(core, "schedule", payload)
    deliver(core, "schedule", payload)  # redelivered while the first answer is still queued
    (ack,) = sent(store, "schedule/ack")
    assert isinstance(ack.body, Ack) and (ack.body.ref_id, ack.body.revision) == (offer.id, 1)
    store.outbox_done([r.id for r in store.outbox_after(0, 100)])  # the answer went out
    deliver(core, "schedule", payload)  # FMAN did not hear it: sent again, answered again
    deliver(core, "schedule", schedule_payload(offer, msg_id="s-1-again"))  # same content
    answers = sent(store, "schedule/ack")
    assert [m.id for m in answers] == ["s-1.ack", "s-1.ack", "s-1-again.ack"]
    assert all(m.body == ack.body for m in answers)
    assert store.offer(offer.id).state == "assigned"
    assert store.plan(offer.id).version == 1
    assert core.stats.duplicates == 3


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"energy": (0.9, 0.3)}, "infeasible", "energy_kwh[0]"),
        ({"energy": (0.3,)}, "infeasible", "energy_kwh"),
        ({"start": "late"}, "infeasible", "start"),
    ],
)
def test_schedule_that_breaks_its_offer_is_rejected_with_the_reason(setup, change, code, field):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    kwargs = dict(change)
    if kwargs.get("start") == "late":
        kwargs["start"] = offer.start_before + 900
    deliver(core, "schedule", schedule_payload(offer, **kwargs))
    (rej,) = sent(store, "schedule/ack")
    assert isinstance(rej.body, Reject)
    assert rej.body.ref_id == offer.id
    assert {(r.code, r.field) for r in rej.body.reasons} >= {(code, field)}
    assert store.offer(offer.id).state == "offered"
    assert store.plan(offer.id) is None


def test_malformed_schedule_is_rejected_naming_the_field(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    bad = msgpack.packb(
        {
            "v": "1.0",
            "kind": "schedule",
            "id": "bad-1",
            "ts": T0,
            "body": {"offer_id": offer.id, "version": 2, "start": "soon", "energy_kwh": [0.3]},
        }
    )
    deliver(core, "schedule", bad)
    deliver(core, "schedule", b"\xc1 not msgpack")
    rej1, rej2 = sent(store, "schedule/ack")
    assert rej1.body.ref_id == offer.id and rej1.body.revision == 2
    assert rej1.body.reasons[0].code == "malformed" and rej1.body.reasons[0].field == "start"
    assert rej2.body.ref_id == "" and rej2.body.reasons[0].code == "malformed"
    assert store.plan(offer.id) is None and core.stats.malformed == 2


def test_unknown_stale_conflicting_and_late_schedules_are_rejected(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    deliver(core, "schedule", schedule_payload(offer, version=3))
    deliver(core, "schedule", schedule_payload(offer, version=2))  # older than in force
    deliver(core, "schedule", schedule_payload(offer, version=3, energy=(0.2, 0.2)))
    unknown = Schedule(offer_id="nobody", version=1, start=T0 + 3600, energy_kwh=[0.1])
    deliver(core, "schedule", protocol.encode(unknown, ts=T0))
    clock.t = offer.assignment_before
    deliver(core, "schedule", schedule_payload(offer, version=4))
    codes = [m.body.reasons[0].code for m in sent(store, "schedule/ack")[1:]]
    assert codes == ["stale", "version_conflict", "unknown_offer", "too_late"]
    assert store.plan(offer.id).version == 3


def test_default_takes_force_at_assignment_before_then_executes(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    core.advance(offer.assignment_before - 1)
    assert store.plan(offer.id) is None
    core.advance(offer.assignment_before)
    plan = store.plan(offer.id)
    assert (plan.source, plan.version, plan.start) == ("default", 0, offer.default.start)
    core.advance(plan.start)
    assert store.offer(offer.id).state == "executing"
    assert core.plans(plan.start + 10)["d1"] == plan
    core.advance(plan.end)
    assert store.offer(offer.id).state == "executed"
    assert core.plans(plan.end) == {}


def test_fman_rejection_still_runs_the_default_and_keeps_its_time(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    reject = Reject(ref_kind="offer", ref_id=offer.id, reasons=[protocol.Reason(code="full")])
    deliver(core, "ack", protocol.encode(reject, ts=T0))
    assert store.offer(offer.id).state == "rejected"
    assert core.plans(offer.default.start)["d1"].source == "default"
    core.refresh(offer.default.start, {"d1": M})
    later = [m.body for m in sent(store, "offer")[1:]]
    assert later, "the next episode, after the rejected one, is offered"
    for o in later:
        assert o.id != offer.id
        assert not revision.overlaps(revision.span(o), revision.span(offer))


def test_state_survives_a_restart(setup, tmp_path):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    payload = schedule_payload(offer)
    deliver(core, "schedule", payload)
    again = Core(agent_id=AGENT, store=store, clock=clock, sources=core.sources)
    assert again.tracked()[offer.id][1] == "assigned"
    deliver(again, "schedule", payload)  # redelivered after the restart
    assert len(sent(store, "schedule/ack")) == 1


def test_an_update_never_postpones_the_deadline(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    accept(core, offer)
    gen = core.sources[0].generator
    gen.upper, gen.deadline_s = 0.6, 100  # a later deadline and a material change
    core.refresh(int(clock.now()) + 300, {"d1": M})
    update = sent(store, "offer")[-1].body
    assert update.revision == 1
    assert update.assignment_before == offer.assignment_before
    assert update.acceptance_before == offer.acceptance_before
    assert protocol.validate_offer(update) == []


def test_another_episode_is_a_new_offer_never_an_update(setup):
    """A generator looking further ahead (the next planning block) names another episode: the
    offer made for the current one stands, with its window; the next one is offered beside
    it only where it cannot overlap, so nothing ever runs outside an offer's window."""
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    accept(core, offer)
    gen = core.sources[0].generator
    gen.cycle_s = 2700  # the next episode would overlap this one: it waits
    core.refresh(int(clock.now()) + 1800, {"d1": M})
    assert len(sent(store, "offer")) == 1
    gen.cycle_s = 7200  # the next episode starts after this one ends: offered beside it
    core.refresh(int(clock.now()) + 1800, {"d1": M})
    first, second = (m.body for m in sent(store, "offer"))
    assert second.id != first.id and second.revision == 0
    assert second.start_after >= first.start_before + 2 * 900
    assert store.offer(first.id).offer == first  # unchanged
    core.advance(first.assignment_before)
    core.advance(first.start_after)
    plan = core.plans(first.start_after)["d1"]
    assert plan.offer_id == first.id
    assert (
        protocol.check_assignment(
            first, start=plan.start, profile=plan.profile, energy_kwh=list(plan.energy_kwh)
        )
        == []
    )


def test_a_rejected_offer_is_never_revised_and_the_next_one_has_a_new_id(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    reject = Reject(
        ref_kind="offer", ref_id=offer.id, reasons=[protocol.Reason(code="acceptance_deadline")]
    )
    deliver(core, "ack", protocol.encode(reject, ts=T0))
    assert store.offer(offer.id).state == "rejected"
    core.sources[0].generator.upper = 0.6
    core.refresh(int(clock.now()) + 300, {"d1": M})
    assert len(sent(store, "offer")) == 1  # final: not revised
    plan = core.plans(offer.default.start)["d1"]
    core.advance(plan.end)
    core.refresh(plan.end, {"d1": M})  # once the default has run
    ids = [m.body.id for m in sent(store, "offer")]
    assert len(ids) == 2 and ids[1] != offer.id


def test_a_refused_update_goes_back_to_the_revision_fman_holds(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    accept(core, offer)
    gen = core.sources[0].generator
    gen.upper = 0.6
    core.refresh(int(clock.now()) + 300, {"d1": M})
    assert store.offer(offer.id).offer.revision == 1
    core.advance(offer.assignment_before)  # the update's answer is late: its default runs
    late = Reject(
        ref_kind="offer",
        ref_id=offer.id,
        revision=1,
        reasons=[protocol.Reason(code="acceptance_deadline")],
    )
    deliver(core, "ack", protocol.encode(late, ts=T0))
    stored = store.offer(offer.id)
    assert (stored.state, stored.offer, stored.locked) == ("accepted", offer, True)
    plan = store.plan(offer.id)
    assert (plan.source, list(plan.energy_kwh)) == ("default", offer.default.energy_kwh)
    gen.upper = 0.2
    core.refresh(int(clock.now()) + 600, {"d1": M})
    assert len(sent(store, "offer")) == 2  # no revision after a refused one


def test_a_schedule_for_an_older_revision_is_taken_if_it_fits_else_refused_as_stale(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    accept(core, offer)
    gen = core.sources[0].generator
    gen.lower, gen.default = 0.35, 0.38  # the device now needs more in every slot
    core.refresh(int(clock.now()) + 300, {"d1": M})
    old = Schedule(offer_id=offer.id, version=1, start=offer.start_after, energy_kwh=[0.3, 0.3])
    deliver(core, "schedule", protocol.encode(old, ts=T0))
    fits = Schedule(offer_id=offer.id, version=2, start=offer.start_after, energy_kwh=[0.4, 0.4])
    deliver(core, "schedule", protocol.encode(fits, ts=T0))
    refused, taken = (m.body for m in sent(store, "schedule/ack"))
    assert isinstance(refused, Reject)
    assert [r.code for r in refused.reasons] == ["stale_revision", "infeasible", "infeasible"]
    assert isinstance(taken, Ack) and taken.revision == 2
    assert store.plan(offer.id).version == 2


def test_fman_rejection_after_the_default_took_force_keeps_it(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    core.advance(offer.assignment_before)  # no schedule: the default is in force
    reject = Reject(ref_kind="offer", ref_id=offer.id, reasons=[protocol.Reason(code="late")])
    deliver(core, "ack", protocol.encode(reject, ts=T0))
    assert store.offer(offer.id).state == "rejected"
    assert store.plan(offer.id).source == "default"
    assert core.plans(offer.default.start)["d1"].version == 0


# -- end-to-end delivery: FMAN's answers, late or not ----------------------------------------


def held(store: Store) -> list[tuple[str, str, int]]:
    return [(r.kind, r.ref, r.revision) for r in store.outbox_after(0, 1000)]


def test_an_offer_stays_queued_until_fman_answers_it(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    store.outbox_sent([(r.id, 0.0) for r in store.outbox_after(0, 10)])  # the broker's PUBACK
    assert held(store) == [("offer", offer.id, 0)]  # a PUBACK is not delivery
    accept(core, offer, revision=1)  # an answer about another revision
    assert held(store) == [("offer", offer.id, 0)]
    accept(core, offer)
    assert held(store) == [] and store.offer(offer.id).state == "accepted"
    accept(core, offer)  # FMAN's answer again (the message was sent twice): nothing changes
    assert store.offer(offer.id).state == "accepted" and core.stats.answers == 3


@pytest.mark.parametrize("reached", ["executing", "executed"])
def test_a_reject_after_the_default_began_records_the_offer_rejected(setup, reached):
    """The offer reached FMAN late (an outage); the agent, without an answer, ran its default.
    FMAN's reject, when it comes, is recorded: FMAN and the agent both say ``rejected``, and
    the default the device runs (or ran) is what ``rejected`` means."""
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    core.advance(offer.assignment_before)
    plan = store.plan(offer.id)
    core.advance(plan.start)
    if reached == "executed":
        core.advance(plan.end)
    assert store.offer(offer.id).state == reached
    late = Reject(
        ref_kind="offer",
        ref_id=offer.id,
        reasons=[protocol.Reason(code="acceptance_deadline", message="arrived 4200 s late")],
    )
    deliver(core, "ack", protocol.encode(late, ts=T0))
    stored = store.offer(offer.id)
    assert (stored.state, stored.fman_reason) == ("rejected", "arrived 4200 s late")
    assert store.plan(offer.id) == plan and held(store) == []
    if reached == "executing":
        assert core.plans(plan.start)["d1"] == plan  # the device keeps running its default
    assert core.stats.rejected_late == 1


def test_a_reject_of_an_offer_forgotten_long_ago_is_still_recorded(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    core.advance(offer.assignment_before)
    plan = store.plan(offer.id)
    core.advance(plan.start)
    core.advance(plan.end)
    core.advance(plan.end + 2 * 86_400)  # out of memory
    assert offer.id not in core.tracked()
    reject = Reject(ref_kind="offer", ref_id=offer.id, reasons=[protocol.Reason(code="late")])
    deliver(core, "ack", protocol.encode(reject, ts=T0))
    assert store.offer(offer.id).state == "rejected" and held(store) == []


def test_a_superseded_answer_changes_nothing_but_delivers(setup):
    store, clock, core, _ = setup
    offer = first_offer(store, clock, core)
    answer = Reject(ref_kind="offer", ref_id=offer.id, reasons=[protocol.Reason(code="superseded")])
    deliver(core, "ack", protocol.encode(answer, ts=T0))
    assert store.offer(offer.id).state == "offered" and held(store) == []


def test_a_refused_withdrawal_is_known_to_the_agent(setup):
    store, clock, core, gone = setup
    offer = first_offer(store, clock, core)
    accept(core, offer)
    gone.touch()
    core.refresh(int(clock.now()) + 300, {"d1": M})
    assert held(store) == [("offer.delete", offer.id, 0)]
    refused = Reject(
        ref_kind="offer.delete",
        ref_id=offer.id,
        reasons=[protocol.Reason(code="not_withdrawable", message="offer is executing")],
    )
    deliver(core, "ack", protocol.encode(refused, ts=T0))
    stored = store.offer(offer.id)
    assert stored.state == "withdrawn"  # the device is gone: nothing runs
    assert stored.fman_reason == "withdrawal refused: offer is executing"
    assert held(store) == [] and core.stats.withdrawals_refused == 1


def test_meter_answers_deliver_the_batch_and_mark_what_fman_quarantined(setup):
    store, _clock, core, _ = setup
    readings = [
        protocol.MeterReading("d1", T0, 900, 0.2, ""),
        protocol.MeterReading("d2", T0, 900, 900.0, ""),
    ]
    with store.transaction():
        store.add_readings(readings)
        store.mark_batched(readings, 4)
        store.enqueue(topic="t", payload=b"b4", kind="meter", ref="4", revision=4,
                      msg_id=f"{AGENT}.m4", now=T0)  # fmt: skip
        store.enqueue(topic="t", payload=b"b5", kind="meter", ref="5", revision=5,
                      msg_id=f"{AGENT}.m5", now=T0)  # fmt: skip
    quarantined = protocol.QuarantinedReading(
        device="d2", start=T0, code="implausible", message="900 kWh in 900 s"
    )
    ack = Ack(ref_kind="meter", ref_id=f"{AGENT}.m4", revision=4, quarantined=[quarantined])
    deliver(core, "ack", protocol.encode(ack, ts=T0))
    assert held(store) == [("meter", "5", 5)]
    assert store.quarantined() == [(readings[1], "implausible: 900 kWh in 900 s")]
    refused = Reject(
        ref_kind="meter", ref_id=f"{AGENT}.m5", revision=5,
        reasons=[protocol.Reason(code="agent_mismatch", message="not yours")],
    )  # fmt: skip
    deliver(core, "ack", protocol.encode(refused, ts=T0))
    assert held(store) == [] and store.dead_letter_count() == 1
    assert (core.stats.readings_quarantined, core.stats.meter_batches_refused) == (1, 1)


class Recording(CycleOffer):
    """A generator that remembers every context it was asked with."""

    def __init__(self, params):
        super().__init__(params)
        self.seen: list[OfferContext] = []

    def offer(self, ctx: OfferContext):
        self.seen.append(ctx)
        return super().offer(ctx)


def test_a_generator_is_told_its_devices_live_episodes_with_their_plans(tmp_path):
    """What a stateful device's next offer starts from: its own live episodes, earliest first,
    each with its state and the plan in force; not another device's, not finished ones."""
    store = Store(path=tmp_path / "core.db", durability="normal")
    clock = StepClock(T0 + 60)
    d1, d2 = Recording({"slots": 2}), Recording({"slots": 2})
    sources = [OfferSource(device="d1", generator=d1), OfferSource(device="d2", generator=d2)]
    core = Core(agent_id=AGENT, store=store, clock=clock, sources=sources)
    both = {"d1": M, "d2": M}
    core.refresh(T0 + 60, both)
    assert d1.seen[-1].episodes == () and d2.seen[-1].episodes == ()
    first = store.offer(f"{AGENT}.d1.{T0 + 3600}").offer
    accept(core, first)
    deliver(core, "schedule", schedule_payload(first, energy=(0.2, 0.35)))
    core.refresh(T0 + 120, both)
    (ep,) = d1.seen[-1].episodes
    assert (ep.id, ep.offer.id, ep.state) == (first.id, first.id, "assigned")
    assert ep.plan is not None and ep.plan.energy_kwh == (0.2, 0.35)
    assert not ep.plan_final(T0 + 120) and ep.plan_final(first.assignment_before)
    (other,) = d2.seen[-1].episodes
    assert other.offer.device == "d2" and (other.state, other.plan) == ("offered", None)

    clock.t = T0 + 3600 + 60
    core.advance(T0 + 3600 + 60)
    core.refresh(T0 + 3600 + 60, both)  # offers the next hour
    core.refresh(T0 + 3600 + 120, both)
    running, following = d1.seen[-1].episodes
    assert (running.id, running.state) == (first.id, "executing") and running.plan_final(T0)
    assert following.id == f"{AGENT}.d1.{T0 + 7200}" and following.state == "offered"

    core.advance(T0 + 7200)  # the first one has run
    core.refresh(T0 + 7200 + 60, both)
    assert [e.id for e in d1.seen[-1].episodes] == [following.id]
    store.close()


def test_an_update_in_flight_is_told_with_the_revision_fman_accepted_before(tmp_path):
    store = Store(path=tmp_path / "core.db", durability="normal")
    gen = Recording({"slots": 2})
    core = Core(
        agent_id=AGENT,
        store=store,
        clock=StepClock(T0 + 60),
        sources=[OfferSource(device="d1", generator=gen)],
    )
    core.refresh(T0 + 60, {"d1": M})
    (offer,) = [o for o, _, _ in core.tracked().values()]
    accept(core, offer)
    core.refresh(T0 + 120, {"d1": M})
    (ep,) = gen.seen[-1].episodes
    assert ep.fallback is None and ep.offers() == (ep.offer,)
    gen.upper = 0.5
    core.refresh(T0 + 180, {"d1": M})  # publishes revision 1
    core.refresh(T0 + 240, {"d1": M})
    (ep,) = gen.seen[-1].episodes
    assert ep.offer.revision == 1 and ep.fallback is not None and ep.fallback.revision == 0
    accept(core, offer, revision=1)
    core.refresh(T0 + 300, {"d1": M})
    (ep,) = gen.seen[-1].episodes
    assert ep.offer.revision == 1 and ep.fallback is None
    store.close()
