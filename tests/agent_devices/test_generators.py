"""Every generator over many random device states: its offers are valid, its default schedule
is feasible, and where it promises physics (a comfort band, a state-of-charge band, a hot tank
by the deadline) a random schedule the offer allows keeps that promise."""

from __future__ import annotations

import math
from itertools import accumulate

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.drivers.base import Measurement
from agent.errors import ConfigError
from agent.generators.base import Generator, OfferContext
from agent.generators.battery import Battery
from agent.generators.boiler import Boiler
from agent.generators.doms import DomsBid
from agent.generators.ev import EvCharger
from agent.generators.freezer import Freezer
from agent.generators.heat_pump import HeatPump
from agent.generators.pv import Pv
from agent.generators.wet_appliance import WetAppliance
from agent.physics.storage import soc_after
from protocol import FlexOffer, check_assignment, effective_profiles, validate_offer

from .helpers import random_feasible

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nows = st.integers(min_value=1_577_836_800, max_value=2_051_222_400)  # 2020 to 2035
resolutions = st.sampled_from([900, 1200, 1800, 3600])
modes = st.sampled_from(["delegated", "direct"])
horizons = st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24])
leads = st.integers(min_value=0, max_value=4 * 3600)
fractions = st.lists(st.floats(0.0, 1.0), min_size=96, max_size=96)


def context(now: int, r: int, mode: str, state: dict[str, float] | None) -> OfferContext:
    m = None if state is None else Measurement(ts=now, state=state)
    return OfferContext(
        agent="agent-7", device="dev-1", now=now, resolution_s=r, mode=mode, measurement=m
    )


def check(offer: FlexOffer | None) -> FlexOffer | None:
    """The properties every offer has."""
    if offer is None:
        return None
    assert validate_offer(offer) == []
    d = offer.default
    assert check_assignment(offer, start=d.start, profile=d.profile, energy_kwh=d.energy_kwh) == []
    assert d.start >= offer.assignment_before >= offer.acceptance_before >= offer.created_at
    assert offer.id.startswith("agent-7.dev-1.")
    return offer


def timing(draw: st.DrawFn) -> dict[str, object]:
    out: dict[str, object] = {"horizon_h": draw(horizons), "lead_s": draw(leads)}
    if draw(st.booleans()):
        out["deviation_eur_per_kwh"] = draw(st.floats(0.0, 1.0))
    return out


# -- heat pump and freezer -------------------------------------------------------------------


@st.composite
def heat_pump_params(draw: st.DrawFn) -> dict[str, object]:
    t_min = draw(st.floats(17.0, 21.0))
    return {
        "r_k_per_kw": draw(st.floats(1.0, 20.0)),
        "c_kwh_per_k": draw(st.floats(2.0, 50.0)),
        "max_power_kw": draw(st.floats(1.0, 10.0)),
        "cop": draw(st.floats(2.0, 5.0)),
        "gains_kw": draw(st.floats(0.0, 1.0)),
        "t_min_c": t_min,
        "t_max_c": t_min + draw(st.floats(1.0, 5.0)),
        "outdoor_mean_c": draw(st.floats(-15.0, 20.0)),
        **timing(draw),
    }


def thermal_promise(gen: HeatPump | Freezer, ctx: OfferContext, offer: FlexOffer, fr: list) -> None:
    """When the block starts inside the band and the corridor needed no relaxing, every
    schedule inside it keeps the exact 1R1C temperature inside the band."""
    start = offer.start_after
    assert start is not None
    profile = offer.profiles[0]
    n = profile.n_slots
    if isinstance(gen, HeatPump):
        t0, outdoor = gen.start_temperature(ctx, start)
        th = gen.slots(
            start=start, n=n, resolution_s=ctx.resolution_s, now=ctx.now, outdoor_c=outdoor
        )
    else:
        t0 = gen.start_temperature(ctx, start)
        th = gen.slots(n=n, resolution_s=ctx.resolution_s)
    lower, upper = th.corridor(t0)
    cum = list(accumulate(offer.default.energy_kwh))
    if any(c < lo - 1e-9 or c > hi + 1e-9 for c, lo, hi in zip(cum, lower, upper, strict=True)):
        return  # relaxed: the state is outside what the band allows, nothing to promise
    schedule = random_feasible(profile, fr)
    assert check_assignment(offer, start=start, profile=0, energy_kwh=schedule) == []
    temps = th.temperatures(t0, schedule)
    assert min(temps) >= th.t_min_c - 1e-6
    assert max(temps) <= th.t_max_c + 1e-6


@SETTINGS
@given(
    params=heat_pump_params(),
    now=nows,
    r=resolutions,
    mode=modes,
    temp=st.one_of(st.none(), st.floats(5.0, 35.0)),
    outdoor=st.one_of(st.none(), st.floats(-25.0, 30.0)),
    fr=fractions,
)
def test_heat_pump(params, now, r, mode, temp, outdoor, fr):
    gen = HeatPump(params)
    state = {} if temp is None else {"temp_c": temp}
    if outdoor is not None:
        state["outdoor_c"] = outdoor
    ctx = context(now, r, mode, state)
    offer = check(gen.offer(ctx))
    assert offer is not None and offer.load_type == "heat_pump"
    thermal_promise(gen, ctx, offer, fr)


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    temp=st.one_of(st.none(), st.floats(-35.0, 0.0)),
    t_min=st.floats(-30.0, -18.0),
    width=st.floats(2.0, 12.0),
    loss=st.floats(0.3, 3.0),
    compressor_w=st.floats(50.0, 400.0),
    tim=st.data(),
    fr=fractions,
)
def test_freezer(now, r, mode, temp, t_min, width, loss, compressor_w, tim, fr):
    params = {
        "t_min_c": t_min,
        "t_max_c": t_min + width,
        "loss_w_per_k": loss,
        "compressor_w": compressor_w,
        **tim.draw(st.builds(dict, horizon_h=horizons, lead_s=leads)),
    }
    gen = Freezer(params)
    ctx = context(now, r, mode, None if temp is None else {"temp_c": temp})
    offer = check(gen.offer(ctx))
    assert offer is not None
    thermal_promise(gen, ctx, offer, fr)


def test_heat_pump_rows_are_the_corridor():
    """A house that starts inside the band gets an offer with real comfort rows: a schedule
    that never heats is refused, the default (the thermostat) is accepted."""
    gen = HeatPump({"outdoor_mean_c": 0.0})
    ctx = context(1_767_225_600, 900, "delegated", {"temp_c": 21.0, "outdoor_c": 0.0})
    offer = check(gen.offer(ctx))
    assert offer is not None
    profile = offer.profiles[0]
    assert profile.dependencies, "a cold day needs lower rows"
    cold = [0.0] * profile.n_slots
    errors = check_assignment(offer, start=offer.default.start, profile=0, energy_kwh=cold)
    assert any("dependency" in e.message for e in errors)


# -- battery -----------------------------------------------------------------------------------


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    capacity=st.floats(2.0, 30.0),
    soc_frac=st.floats(0.0, 1.0),
    eta_c=st.floats(0.8, 1.0),
    eta_d=st.floats(0.8, 1.0),
    charge_kw=st.floats(0.5, 10.0),
    tim=st.data(),
    fr=fractions,
)
def test_battery(now, r, mode, capacity, soc_frac, eta_c, eta_d, charge_kw, tim, fr):
    params = {
        "capacity_kwh": capacity,
        "eta_charge": eta_c,
        "eta_discharge": eta_d,
        "max_charge_kw": charge_kw,
        "max_discharge_kw": charge_kw * 0.8,
        **tim.draw(st.builds(dict, horizon_h=horizons, lead_s=leads)),
    }
    gen = Battery(params)
    assert gen.offer(context(now, r, mode, None)) is None
    soc0 = soc_frac * capacity
    offer = check(gen.offer(context(now, r, mode, {"soc_kwh": soc0})))
    assert offer is not None
    spec = gen.spec
    soc0 = round(soc0 / (capacity / 100)) * (capacity / 100)
    if not spec.soc_min_kwh + (1 / eta_d - eta_c) * capacity <= soc0 <= spec.soc_max_kwh:
        return  # starts outside (or at the reserve edge of) the band: the rows were relaxed
    schedule = random_feasible(offer.profiles[0], fr)
    assert check_assignment(offer, start=offer.default.start, profile=0, energy_kwh=schedule) == []
    soc, charged = soc0, 0.0
    for e in schedule:
        soc = soc_after(soc, e, eta_charge=eta_c, eta_discharge=eta_d)
        charged += max(e, 0.0)
        assert soc <= spec.soc_max_kwh + 1e-6
        if charged <= (spec.soc_max_kwh - spec.soc_min_kwh) / eta_c:  # the stated assumption
            assert soc >= spec.soc_min_kwh - 1e-6


# -- EV ----------------------------------------------------------------------------------------


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    battery=st.floats(10.0, 120.0),
    soc_frac=st.floats(0.0, 1.0),
    power=st.floats(1.4, 22.0),
    dwell_h=st.floats(0.0, 30.0),
    plugged=st.booleans(),
    with_departure=st.booleans(),
    lead=leads,
)
def test_ev(now, r, mode, battery, soc_frac, power, dwell_h, plugged, with_departure, lead):
    gen = EvCharger({"battery_kwh": battery, "max_power_kw": power, "lead_s": lead})
    state = {"plugged": float(plugged), "soc_kwh": soc_frac * battery, "plugin_ts": now - 60.0}
    if with_departure:
        state["departure_ts"] = now + dwell_h * 3600
    offer = check(gen.offer(context(now, r, mode, state)))
    if offer is None:
        return
    assert plugged
    total = offer.profiles[0].total
    assert total is not None
    soc = round(soc_frac * battery, 1)
    # the most the offer allows never overfills the car beyond the driver's target
    assert soc + gen.spec.efficiency * total.upper <= gen.spec.target_soc * battery + 1e-6
    assert offer.id == f"agent-7.dev-1.{now - 60}"


# -- boiler (two-mode) -------------------------------------------------------------------------


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    temp=st.floats(10.0, 70.0),
    volume=st.floats(50.0, 400.0),
    power=st.floats(1.0, 6.0),
    lead=leads,
)
def test_boiler(now, r, mode, temp, volume, power, lead):
    gen = Boiler(
        {"volume_l": volume, "power_kw": power, "lead_s": lead, "timezone": "Europe/Copenhagen"}
    )
    assert gen.offer(context(now, r, mode, None)) is None
    offer = check(gen.offer(context(now, r, mode, {"temp_c": temp})))
    if offer is None:
        return
    deadline = int(offer.id.rsplit(".", 1)[1])
    base = offer.profiles[0]
    assert base.total is not None
    # the promise: a continuous full-power run of each mode's least energy from the latest
    # start of that mode reaches the target at the deadline (unless the run was capped)
    spec = gen.spec
    per_slot = spec.power_kw * r / 3600
    need, reached = gen.energy_needed(round(temp, 1), now, offer.start_after, deadline, r)
    if not reached or base.total.lower < need - 1e-9:
        return  # capped by the tank's room or the time left: no promise to keep
    starts = [(offer.start_after, 0)]
    if offer.two_mode is not None:
        tm = offer.two_mode
        assert tm.after_portion <= tm.prior_portion == 1.0
        starts += [(tm.prior_time, 0), (offer.start_before, 1)]
    profiles = effective_profiles(offer)
    for start, p in starts:
        prof = profiles[p]
        energy, left = [], prof.total.lower
        for hi in prof.upper_kwh:
            energy.append(min(hi, left))
            left -= energy[-1]
        assert check_assignment(offer, start=start, profile=p, energy_kwh=energy) == []
        t = spec.rc.step(
            round(temp, 1), ambient_c=spec.ambient_c, heat_kw=0.0, dt_h=(start - now) / 3600
        )
        for e in energy:
            t = spec.rc.step(t, ambient_c=spec.ambient_c, heat_kw=e / (r / 3600), dt_h=r / 3600)
        end = start + len(energy) * r
        t = spec.rc.step(t, ambient_c=spec.ambient_c, heat_kw=0.0, dt_h=(deadline - end) / 3600)
        assert t >= spec.t_target_c - 1e-6
        assert per_slot > 0


# -- wet appliance -----------------------------------------------------------------------------


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    appliance=st.sampled_from(["dishwasher", "washing_machine"]),
    delay_h=st.floats(-2.0, 30.0),
    programme=st.integers(-1, 4),
    ready=st.booleans(),
    running=st.booleans(),
    lead=leads,
)
def test_wet_appliance(now, r, mode, appliance, delay_h, programme, ready, running, lead):
    gen = WetAppliance({"appliance": appliance, "lead_s": lead})
    state = {
        "ready": float(ready),
        "running": float(running),
        "ready_ts": float(now - 30),
        "deadline_ts": now + delay_h * 3600,
        "programme": float(programme),
    }
    offer = check(gen.offer(context(now, r, mode, state)))
    if not ready or running:
        assert offer is None
        return
    assert offer is not None
    programmes = gen.spec.programmes
    assert len(offer.profiles) == len(programmes)
    for prof, prog in zip(offer.profiles, programmes, strict=True):
        assert prof.lower_kwh == prof.upper_kwh == prog.slots(r)
        assert math.isclose(sum(prof.lower_kwh), prog.energy_kwh, rel_tol=1e-9)
    assert offer.default.profile == (programme if 0 <= programme < len(programmes) else 0)


# -- PV and DOMS -------------------------------------------------------------------------------


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    mode=modes,
    lat=st.floats(-60.0, 66.0),
    lon=st.floats(-180.0, 180.0),
    peak=st.floats(0.5, 500.0),
    available_w=st.one_of(st.none(), st.floats(0.0, 600_000.0)),
    curtailable=st.booleans(),
    tim=st.data(),
)
def test_pv(now, r, mode, lat, lon, peak, available_w, curtailable, tim):
    params = {
        "latitude": lat,
        "longitude": lon,
        "peak_kw": peak,
        "curtailable": curtailable,
        **tim.draw(st.builds(dict, horizon_h=horizons, lead_s=leads)),
    }
    state = None if available_w is None else {"available_w": available_w}
    offer = check(Pv(params).offer(context(now, r, mode, state)))
    if offer is None:
        return
    prof = offer.profiles[0]
    assert all(lo <= 0.0 for lo in prof.lower_kwh)
    assert all(
        up == (0.0 if curtailable else lo)
        for lo, up in zip(prof.lower_kwh, prof.upper_kwh, strict=True)
    )
    # never more than the array's peak
    assert min(prof.lower_kwh) >= -peak * r / 3600 - 1e-9


@SETTINGS
@given(
    now=nows,
    r=resolutions,
    own_r=st.one_of(st.none(), resolutions),
    mode=modes,
    baseline=st.one_of(
        st.floats(-500.0, 500.0), st.lists(st.floats(-500.0, 500.0), min_size=24, max_size=24)
    ),
    up=st.floats(0.0, 100.0),
    down=st.floats(0.0, 100.0),
    direction=st.sampled_from(["both", "up", "down"]),
    hours=st.lists(st.integers(0, 23), min_size=1, max_size=24, unique=True),
    tim=st.data(),
)
def test_doms(now, r, own_r, mode, baseline, up, down, direction, hours, tim):
    params = {
        "baseline_kw": baseline,
        "up_kw": up,
        "down_kw": down,
        "direction": direction,
        "hours": hours,
        "timezone": "Europe/Athens",
        **tim.draw(st.builds(dict, horizon_h=horizons, lead_s=leads)),
    }
    if own_r is not None:
        params["resolution_s"] = own_r
    offer = check(DomsBid(params).offer(context(now, r, mode, None)))
    if offer is None:
        return
    assert offer.resolution_s == (own_r or r)
    assert offer.prices is not None and len(offer.prices.slots) == offer.profiles[0].n_slots
    assert offer.prices.deviation_eur_per_kwh == 0.10


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params", "key"),
    [
        (HeatPump, {"r_k_per_kw": -1}, "devices.x.r_k_per_kw"),
        (HeatPump, {"t_min_c": 22, "t_max_c": 21}, "devices.x.t_max_c"),
        (HeatPump, {"horizon_h": 5}, "devices.x.horizon_h"),
        (HeatPump, {"cop": "high"}, "devices.x.cop"),
        (Freezer, {"setpoint_c": 5}, "devices.x.setpoint_c"),
        (Battery, {"soc_min": 0.9, "soc_max": 0.8}, "devices.x.soc_max"),
        (Battery, {"eta_charge": float("nan")}, "devices.x.eta_charge"),
        (EvCharger, {"min_soc": 0.95, "target_soc": 0.8}, "devices.x.min_soc"),
        (EvCharger, {"lead_s": True}, "devices.x.lead_s"),
        (Boiler, {"t_target_c": 70, "t_max_c": 65}, "devices.x.t_target_c"),
        (Boiler, {"timezone": "Mars/Olympus"}, "devices.x.timezone"),
        (Boiler, {"ready_by_h": [6, 25]}, "devices.x.ready_by_h[1]"),
        (WetAppliance, {"appliance": "dryer"}, "devices.x.appliance"),
        (
            WetAppliance,
            {"programmes": {"eco": [[10, 50], [0, 100]]}},
            "devices.x.programmes.eco[1]",
        ),
        (WetAppliance, {"appliance": "custom"}, "devices.x.programmes"),
        (Pv, {"latitude": 80}, "devices.x.latitude"),
        (DomsBid, {"resolution_s": 600}, "devices.x.resolution_s"),
        (DomsBid, {"baseline_kw": [1, 2]}, "devices.x.baseline_kw"),
        (
            DomsBid,
            {"price_min_eur_per_kwh": 1.0, "price_max_eur_per_kwh": 0.5},
            "devices.x.price_max_eur_per_kwh",
        ),
    ],
)
def test_bad_params_name_their_key(cls: type[Generator], params, key):
    with pytest.raises(ConfigError) as exc:
        cls(params, key_prefix="devices.x.")
    assert exc.value.key == key


def test_custom_programmes_become_profiles():
    gen = WetAppliance(
        {"appliance": "custom", "programmes": {"a": [[45, 1000]], "b": [[15, 2000], [60, 100]]}}
    )
    ctx = context(1_767_225_600, 900, "delegated", {"ready": 1.0, "ready_ts": 1_767_225_600.0})
    offer = check(gen.offer(ctx))
    assert offer is not None
    assert [p.lower_kwh for p in offer.profiles] == [
        [0.25, 0.25, 0.25],
        [0.5, 0.025, 0.025, 0.025, 0.025],
    ]


def test_block_offers_keep_their_id_within_a_block():
    """Two calls in the same block describe the same next block: the same id (an update)."""
    gen = Battery({})
    a = gen.offer(context(1_767_225_600 + 60, 900, "delegated", {"soc_kwh": 5.0}))
    b = gen.offer(context(1_767_225_600 + 3000, 900, "delegated", {"soc_kwh": 5.0}))
    assert a is not None and b is not None
    assert a.id == b.id and a.profiles == b.profiles
    later = gen.offer(context(1_767_225_600 + 6 * 3600, 900, "delegated", {"soc_kwh": 5.0}))
    assert later is not None and later.id != a.id


def test_an_episode_stays_valid_while_its_device_is_there():
    """The core withdraws a waiting offer its generator no longer vouches for: a PV block
    offered at noon holds although the night block has nothing; a charging session holds
    while its car is plugged in, and not for another car."""
    noon, t0 = 1_767_268_800, 1_767_225_600
    pv = Pv({"latitude": 55.7, "longitude": 12.6})
    block = pv.offer(context(noon - 3 * 3600, 900, "delegated", {}))
    assert block is not None
    evening = context(noon + 5 * 3600, 900, "delegated", {})
    assert pv.offer(evening) is None and pv.still_valid(block, evening)
    ev = EvCharger({})
    plugged = {"plugged": 1.0, "soc_kwh": 10.0, "plugin_ts": float(t0)}
    session = ev.offer(context(t0, 900, "delegated", plugged))
    assert session is not None
    assert ev.still_valid(session, context(t0 + 3600, 900, "delegated", plugged))
    other = dict(plugged, plugin_ts=float(t0 + 7200))
    assert not ev.still_valid(session, context(t0 + 7200, 900, "delegated", other))
    assert not ev.still_valid(session, context(t0 + 3600, 900, "delegated", {"plugged": 0.0}))
