"""FMAN's configuration on the same base as the agent's: every problem at its key, with hints;
what it writes it reads back; a series error is the one ``SeriesError``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

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


def test_fman_config_check_lists_every_error_with_its_key(tmp_path):
    """``atp fman config check`` did not exist; ``foa config check`` did."""
    from click.testing import CliRunner

    from cloud.cli import main as cli_main

    bad = tmp_path / "fman.toml"
    bad.write_text(
        "[worker]\nintervall = 3\nbatch_max = -1\n"
        '[planning]\nresolution_s = 1000\n[objective]\nkind = "cost"\n'
    )
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(bad), "--json"])
    assert out.exit_code == 1
    doc = json.loads(out.stdout)
    assert doc["ok"] is False
    assert {e["key"] for e in doc["errors"]} == {
        "worker.intervall",
        "worker.batch_max",
        "planning.resolution_s",
        "objective.prices",
    }
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(bad)])
    assert out.exit_code == 1 and out.stdout == ""
    head, *lines = out.stderr.strip().splitlines()
    assert head == f"{bad}: 4 error(s)" and len(lines) == 4
    assert any(line.strip().startswith("worker.intervall: unknown key") for line in lines)
    bad.write_bytes(b"42")
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(bad)])
    assert out.exit_code == 1 and "not valid TOML" in out.stderr and "Traceback" not in out.output
    example = Path(__file__).parents[2] / "examples" / "fman.toml"
    out = CliRunner().invoke(cli_main, ["fman", "config", "check", str(example)])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(f"{example}: OK (worker ")
