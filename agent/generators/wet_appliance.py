"""Wet appliance (dishwasher, washing machine): which programme, and when it starts.

Physics (:mod:`agent.physics.appliance`): a programme is a fixed sequence of phases; once
started it runs to the end and cannot be shaped. So each programme is one profile whose
lower and upper bounds are both its energy per slot, and the offer's profiles are the
programmes, exclusive-or: a schedule picks one, and its start.

When the user has loaded the machine and asked for a "smart start" (``ready`` in the
measurement state), the offer lets it start from the first slot ``lead_s`` ahead until the
latest start that still finishes by the user's ``deadline_ts`` (else ``max_delay_h`` after
``ready_ts``). Profile ``i`` is always programme ``i`` of the device's list, so the EMS can
select the programme by the schedule's profile index; a programme too long to finish by the
deadline may only start at once (it will finish late, but the user's choice stays
possible). The default schedule starts the user's programme (``programme``, else the first)
at once: what the machine would do without the agent.

Measurement state used: ``ready`` (1 when waiting for its start), ``running`` (1 while a
programme runs: no offer), ``ready_ts``, ``deadline_ts`` and ``programme`` (index, -1 for
any). The offer id ends with ``ready_ts``: one load, one id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.generators._common import Pricing, Timing, build_offer, check_resolution
from agent.generators.base import Generator, OfferContext
from agent.params import Params
from agent.physics.appliance import WetSpec
from protocol import FlexOffer, Profile

#: The longest start window an offer may have (the protocol's limit), s.
MAX_WINDOW_S = 7 * 86_400


class WetAppliance(Generator):
    name = "wet_appliance"
    version = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        super().__init__(params, key_prefix=key_prefix)
        p = Params(params, prefix=key_prefix)
        self.spec = WetSpec.from_params(p)
        self.timing = Timing.from_params(p)
        self.pricing = Pricing.from_params(p)

    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        r = check_resolution(ctx)
        m = ctx.measurement
        if m is None or not m.state.get("ready") or m.state.get("running"):
            return None
        state = m.state
        start = self.timing.earliest_start(ctx.now, r)
        ready_ts = int(state.get("ready_ts", ctx.now))
        deadline = state.get("deadline_ts")
        if deadline is None:
            deadline = ready_ts + self.spec.max_delay_h * 3600
        deadline = min(int(deadline), start + MAX_WINDOW_S) // r * r
        chosen = int(state.get("programme", -1))
        if not 0 <= chosen < len(self.spec.programmes):
            chosen = 0
        profiles = []
        latest_overall = start
        for prog in self.spec.programmes:
            energy = prog.slots(r)
            latest = max(start, deadline - len(energy) * r)
            latest_overall = max(latest_overall, latest)
            profiles.append(Profile(lower_kwh=energy, upper_kwh=list(energy), start_before=latest))
        # a profile's own window only narrows the offer's: leave it out where it is the same
        profiles = [
            Profile(lower_kwh=p.lower_kwh, upper_kwh=p.upper_kwh)
            if p.start_before == latest_overall
            else p
            for p in profiles
        ]
        return build_offer(
            ctx,
            key=ready_ts,
            load_type="wet_appliance",
            start=start,
            latest_start=latest_overall,
            profiles=profiles,
            default_kwh=profiles[chosen].lower_kwh,
            default_profile=chosen,
            pricing=self.pricing,
            lead_s=self.timing.lead_s,
        )
