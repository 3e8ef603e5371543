"""The DSO interface's pure rules: what a registration must be, and which of its slots each
gate's book takes."""

from __future__ import annotations

import json

import pytest

from cloud.fmar import dso, gates
from cloud.fmar.config import MarketSection
from cloud.fmar.store import CongestionRow
from protocol import DecodeError
from protocol._dso import CongestionParams, parse_dso_params

D = 1_767_225_600
M = MarketSection(nodes=["n1"], horizon_s=1800, gate_period_s=1800, gate_lead_s=900, buyers=["dso"])
NEXT = gates.gate_delivering("m", M, D)


def _params(**kw) -> CongestionParams:
    base = {
        "market": "m",
        "id": "c1",
        "start": D,
        "kwh": [-1.0, -2.0, -3.0],
        "limit_eur_per_kwh": [0.1, 0.2, 0.3],
    }
    p = parse_dso_params("congestion", {**base, **kw})
    assert isinstance(p, CongestionParams)
    return p


def _row(**kw) -> CongestionRow:
    row = dso.registration(_params(**kw), party="dso", m=M, next_gate=NEXT, at=1.0)
    assert isinstance(row, CongestionRow), row
    return row


def test_a_registration_spanning_two_gates_trades_its_slots_in_each():
    reg = _row()
    assert reg.node == "n1"  # the market's one node
    first = dso.gate_entry(reg, NEXT)
    assert first == {
        "id": "congestion.dso.c1",
        "node": "n1",
        "start": D,
        "kwh": [-1.0, -2.0],
        "limit_eur_per_kwh": [0.1, 0.2],
        "partial": True,
    }
    second = dso.gate_entry(reg, gates.gate_delivering("m", M, D + 1800))
    assert second is not None
    assert (second["start"], second["kwh"], second["limit_eur_per_kwh"]) == (
        D + 1800,
        [-3.0],
        [0.3],
    )
    assert dso.gate_entry(reg, gates.gate_delivering("m", M, D + 3600)) is None


def test_a_single_limit_and_fixed_demand_carry_over_to_every_gate():
    reg = _row(limit_eur_per_kwh=None, start=D + 900)
    entry = dso.gate_entry(reg, NEXT)
    assert entry is not None and entry["limit_eur_per_kwh"] is None and entry["kwh"] == [-1.0]
    assert json.loads(_row(limit_eur_per_kwh=0.4).limit) == 0.4


@pytest.mark.parametrize(
    ("kw", "party", "says"),
    [
        ({}, "agent-a", "may not buy"),
        ({"node": "n9"}, "dso", "params.node"),
        ({"start": D + 60}, "dso", "grid"),
        ({"start": D - 1800, "kwh": [-1.0, -1.0], "limit_eur_per_kwh": 0.2}, "dso", "ends before"),
        ({"start": D - 900, "kwh": [-1.0, -1.0], "limit_eur_per_kwh": 0.2}, "dso", "before"),
        ({"limit_eur_per_kwh": -0.1}, "dso", ">= 0"),
    ],
)
def test_a_registration_is_refused_with_the_reason(kw, party, says):
    got = dso.registration(_params(**kw), party=party, m=M, next_gate=NEXT, at=1.0)
    assert isinstance(got, str) and says in got


def test_bad_parameters_name_their_field():
    with pytest.raises(DecodeError) as exc:
        parse_dso_params("congestion", {"market": "m", "id": "c", "start": D, "kwh": []})
    assert exc.value.errors[0].path == "params"
    assert "limit_eur_per_kwh" in exc.value.errors[0].message  # required, null for none
    with pytest.raises(DecodeError) as exc:
        _params(kwh=[], limit_eur_per_kwh=None)
    assert exc.value.errors[0].path == "params.kwh"
    with pytest.raises(DecodeError) as exc:
        _params(limit_eur_per_kwh=[0.1])
    assert exc.value.errors[0].path == "params.limit_eur_per_kwh"
    with pytest.raises(DecodeError) as exc:
        parse_dso_params("nothing", {})
    assert exc.value.errors[0].path == "method"
