"""When a new prediction is a new revision: real generators' offers over time and drift."""

from __future__ import annotations

import msgspec

from agent.drivers.base import Measurement
from agent.generators.base import OfferContext
from agent.generators.boiler import Boiler
from agent.generators.ev import EvCharger
from agent.generators.heat_pump import HeatPump
from agent.revision import material_change, overlaps, span
from protocol import Bounds
from tests.agent.helpers import T0


def ctx(now: int, state: dict[str, float]) -> OfferContext:
    m = Measurement(ts=now, state=state)
    return OfferContext(agent="a", device="d", now=now, resolution_s=900, measurement=m)


def test_time_passing_is_not_a_change_but_the_device_changing_is():
    ev = EvCharger({})
    car = {"plugged": 1.0, "soc_kwh": 20.0, "plugin_ts": T0, "departure_ts": T0 + 36_000.0}
    first = ev.offer(ctx(T0 + 60, car))
    assert first is not None
    for later, change, material in [
        (900, {}, False),  # its window starts a slot later: time passed, nothing changed
        (1800, {"soc_kwh": 20.1}, False),  # rounding-level drift
        (900, {"soc_kwh": 25.0}, True),  # needs 5 kWh less
        (1800, {"departure_ts": T0 + 32_400.0}, True),  # leaves an hour earlier
    ]:
        new = ev.offer(ctx(T0 + 60 + later, {**car, **change}))
        assert new is not None and new.id == first.id
        assert (material_change(first, new) is not None) is material, (later, change)


def test_a_heat_pumps_prediction_drift_is_tolerated_a_colder_day_is_not():
    hp = HeatPump({})
    first = hp.offer(ctx(T0 + 3600, {"temp_c": 21.0, "outdoor_c": 3.0}))
    drift = hp.offer(ctx(T0 + 5400, {"temp_c": 21.2, "outdoor_c": 3.5}))
    colder = hp.offer(ctx(T0 + 5400, {"temp_c": 20.5, "outdoor_c": -4.0}))
    assert first.id == drift.id == colder.id
    assert material_change(first, drift) is None
    assert material_change(first, colder) is not None


def test_a_boilers_offer_keeps_while_its_tank_cools_as_predicted():
    boiler = Boiler({})
    first = boiler.offer(ctx(T0 + 60, {"temp_c": 40.0}))
    later = boiler.offer(ctx(T0 + 1860, {"temp_c": 39.9}))  # two-mode split moved with time
    drawn = boiler.offer(ctx(T0 + 960, {"temp_c": 35.0}))  # a shower: more energy needed
    assert first.id == later.id == drawn.id
    assert first.two_mode != later.two_mode
    assert material_change(first, later) is None
    assert material_change(first, drawn) is not None


def test_totals_and_spans():
    ev = EvCharger({})
    car = {"plugged": 1.0, "soc_kwh": 20.0, "plugin_ts": T0, "departure_ts": T0 + 36_000.0}
    offer = ev.offer(ctx(T0 + 60, car))
    p = offer.profiles[0]
    wider = msgspec.structs.replace(p, total=Bounds(p.total.lower, p.total.upper + 0.01))
    assert material_change(offer, msgspec.structs.replace(offer, profiles=[wider])) is None
    assert span(offer) == (T0 + 1800, T0 + 36_000)
    assert overlaps(span(offer), (T0 + 35_100, T0 + 40_000))
    assert not overlaps(span(offer), (T0 + 36_000, T0 + 40_000))


def test_a_sheds_returns_are_terms_of_trade():
    from pathlib import Path

    import protocol

    path = Path(__file__).resolve().parents[2] / "examples" / "offers" / "freezer-shed.json"
    shed = protocol.from_json(path.read_bytes(), protocol.FlexOffer)
    tm = shed.two_mode
    replace = msgspec.structs.replace
    assert material_change(shed, replace(shed, two_mode=replace(tm, after_portion=0.701))) is None
    longer = replace(shed, two_mode=replace(tm, after_s=2700))
    assert material_change(shed, longer) == "two-mode windows changed"
    dearer = replace(shed, two_mode=replace(tm, after_portion=0.9))
    assert material_change(shed, dearer) == "two-mode portions changed"
    scaled = replace(
        shed,
        two_mode=protocol.TwoMode(
            prior_time=shed.start_after,
            prior_portion=1.0,
            after_time=shed.start_before,
            after_portion=1.0,
        ),
    )
    assert material_change(shed, scaled) == "two-mode operation changed"
