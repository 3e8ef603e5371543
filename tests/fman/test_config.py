"""FMAN's configuration on the same base as the agent's: every problem at its key, with hints;
what it writes it reads back; a series error is the one ``SeriesError``."""

from __future__ import annotations

import tomllib

import msgspec
import pytest

from cloud.fman import ConfigError, config_from_dict, series
from cloud.fman.config import dump_toml, load_config
from cloud.optim.errors import SeriesError


def test_a_misspelt_key_gets_its_full_key_and_a_hint():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"planning": {"intervall_s": 5}})
    assert err.value.key == "planning.intervall_s"
    assert str(err.value) == "planning.intervall_s: unknown key (did you mean 'interval_s'?)"


def test_every_problem_is_named_not_only_the_first():
    with pytest.raises(ConfigError) as err:
        config_from_dict(
            {
                "worker": {"batch_max": 0, "qos": 2},
                "acceptance": {"agents": {"a": {"max_power_kw": "lots"}}},
            }
        )
    assert err.value.key == "worker.batch_max"
    assert str(err.value) == (
        "worker.batch_max: must be positive; worker.qos: one of 0, 1; "
        "acceptance.agents.a.max_power_kw: must be float, not str ('lots')"
    )


def test_what_the_demo_writes_reads_back_the_same(tmp_path):
    cfg = config_from_dict(
        {
            "worker": {"id": "w-1", "broker": "mqtt://127.0.0.1:1883"},
            "acceptance": {"agents": {"house 1": {"devices": ["ev", "hp"], "max_power_kw": 11}}},
            "objective": {"kind": "cost", "weights": {"cost": 1.0}, "prices": {"topic": "p"}},
        }
    )
    text = dump_toml(msgspec.to_builtins(cfg))
    (tmp_path / "fman.toml").write_text(text)
    assert tomllib.loads(text)["acceptance"]["agents"]["house 1"]["devices"] == ["ev", "hp"]
    assert load_config(tmp_path / "fman.toml") == cfg


def test_a_series_error_is_the_one_class_and_says_where(tmp_path):
    assert series.SeriesError is SeriesError
    with pytest.raises(SeriesError) as err:
        series.parse_json(b'{"start": 0, "values": [1, "x"]}')
    assert (err.value.where, err.value.message) == ("values[1]", "'x' is not a number")
    (tmp_path / "t.csv").write_text("time,value\n0,1\n900,lots\n")
    with pytest.raises(SeriesError) as err:
        series.load_file(tmp_path / "t.csv")
    assert str(err.value) == f"{tmp_path / 't.csv'}: row 3: value 'lots' is not a number"
