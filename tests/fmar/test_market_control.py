"""The operator's actions shared by ``atp market close|open|set`` and the markets page:
the state written to a real market store, parameters changed in fmar.toml in place (its
comments kept, checked whole by the service's loader, the file untouched on a refusal)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud.fmar import MarketError
from cloud.fmar._errors import MarketConfigError
from cloud.fmar.config import load_config
from cloud.fmar.control import change_params, parse_value, set_state
from cloud.fmar.store import open_market_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fmar_toml(tmp_path: Path) -> Path:
    text = (ROOT / "examples" / "fmar.toml").read_text()
    path = tmp_path / "fmar.toml"
    path.write_text(text.replace('store = ".atp/fmar.db"', f'store = "{tmp_path / "fmar.db"}"'))
    os.chmod(path, 0o640)
    return path


def test_parameters_change_in_place_keeping_comments(fmar_toml: Path):
    before = fmar_toml.read_text()
    values = {
        k: parse_value("feeder-1", k, v)
        for k, v in (("min_order_kwh", "0.5"), ("pricing", "pay-as-bid"), ("buyers", "dso, x"))
    }
    change = change_params(fmar_toml, "feeder-1", values)
    assert change.changed == ("pricing", "min_order_kwh", "buyers")
    after = fmar_toml.read_text()
    m = load_config(fmar_toml).markets["feeder-1"]
    assert (m.min_order_kwh, m.pricing, m.buyers) == (0.5, "pay-as-bid", ["dso", "x"])
    # every comment line of the operator's file is still there
    comments = [ln for ln in before.splitlines() if ln.lstrip().startswith("#")]
    assert comments and all(c in after.splitlines() for c in comments)
    assert oct(fmar_toml.stat().st_mode & 0o777) == oct(0o640)
    # the same values again change nothing
    assert change_params(fmar_toml, "feeder-1", values).changed == ()


@pytest.mark.parametrize(
    ("key", "text", "said"),
    [
        ("horizon_s", "1000", "markets.feeder-1.horizon_s: 1000 s is not a multiple of 900 s"),
        ("voll", "much", "markets.feeder-1.voll: 'much' is not a number"),
        ("kind", "one-sided", "markets.feeder-1.kind: not changed by name"),
        ("pricing", "auction", "markets.feeder-1.pricing"),
    ],
)
def test_a_refused_change_names_the_key_and_leaves_the_file(fmar_toml, key, text, said):
    before = fmar_toml.read_bytes()
    with pytest.raises(MarketConfigError) as err:
        change_params(fmar_toml, "feeder-1", {key: parse_value("feeder-1", key, text)})
    assert said in str(err.value)
    assert fmar_toml.read_bytes() == before


def test_an_unknown_market_is_refused(fmar_toml: Path):
    with pytest.raises(MarketConfigError, match="no such market"):
        change_params(fmar_toml, "nowhere", {"voll": 1.0})


def test_closing_and_opening_write_the_store(tmp_path: Path):
    where = str(tmp_path / "fmar.db")
    s = open_market_store(where)
    s.put_market("m1", "{}", at=0)
    s.close()
    closed = set_state(where, "m1", "closed", note="maintenance", clock=lambda: 100.0)
    assert (closed.was, closed.state, closed.at) == ("open", "closed", 100.0)
    s = open_market_store(where, readonly=True)
    row = s.control("m1")
    s.close()
    assert row is not None and (row.state, row.note) == ("closed", "maintenance")
    assert set_state(where, "m1", "open").was == "closed"
    with pytest.raises(MarketError, match=r"no market 'm2'.*markets: m1"):
        set_state(where, "m2", "closed")
