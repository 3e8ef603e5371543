"""fmar.toml's checks (the key named for every mistake) and the gate calendar's arithmetic."""

from __future__ import annotations

import itertools

import pytest

from cloud.fmar._errors import MarketConfigError
from cloud.fmar.config import config_from_dict
from cloud.fmar.gates import calendar, current_gate

D = 1_767_225_600  # 2026-01-01T00:00Z


def _market(**keys: object) -> dict:
    return {"markets": {"m1": {"nodes": ["n1"], **keys}}}


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (_market(gate_perod_s=3600), "markets.m1.gate_perod_s", "did you mean 'gate_period_s'"),
        (_market(horizon_s=1000), "markets.m1.horizon_s", "not a multiple of 900"),
        (_market(pricing="vickrey"), "markets.m1.pricing", ""),
        (_market(kind="two-sided", nodes=["a", "b"]), "markets.m1.nodes", "exactly one node"),
        (
            {"markets": {"m": {"kind": "many-to-many", "nodes": ["a", "b"],
                               "links": [{"from": "a", "to": "c", "capacity_kwh": 1}]}}},
            "markets.m.links[0].to", "'c' is not in nodes",
        ),
        ({}, "markets", "no market"),
        ({**_market(), "service": {"broker": "http://x"}}, "service.broker", "mqtt://"),
    ],
)  # fmt: skip
def test_every_mistake_names_its_key(data: dict, key: str, words: str):
    with pytest.raises(MarketConfigError) as info:
        config_from_dict(data)
    assert info.value.key == key
    assert words in str(info.value)


def test_exactly_one_gate_takes_orders_at_any_time():
    m = config_from_dict(_market(horizon_s=3600, gate_period_s=3600, gate_lead_s=900)).markets["m1"]
    for now in (D - 900 - 3600, D - 901, D - 900, D - 1, D + 1800):
        g = current_gate("m1", m, now)
        assert g.opens_at <= now < g.closes_at
        assert g.closes_at == g.delivery_start - 900 and g.delivery_start % 3600 == 0
    assert current_gate("m1", m, D - 901).gate == "20260101T0000Z"
    assert current_gate("m1", m, D - 900).gate == "20260101T0100Z"
    cal = calendar("m1", m, D - 901, 2)
    assert [g.delivery_start for g in cal] == [D, D + 3600, D + 7200]
    assert all(a.closes_at == b.opens_at for a, b in itertools.pairwise(cal))
