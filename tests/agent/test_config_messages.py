"""What ``foa config check`` says about each kind of mistake, word for word.

A user fixes ``foa.toml`` from these lines alone, so each names its key and says what is wrong
(with a "did you mean" for a near miss). The table pins them through the real command, so a
change in how the file is read cannot quietly change or drop one.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent.cli import main

AGENT = 'id = "house-1"\n'
BROKER = 'url = "mqtt://127.0.0.1:1883"\n'
EV = 'driver = "sim"\nmodel = "ev"\ngenerator = "ev"\n'
DIRECT = 'trading_mode = "direct"\n'
DRIVERS = "modbus_rtu, modbus_tcp, serial_meter, shelly, sim, tasmota"
GENERATORS = "battery, boiler, doms, ev, freezer, heat_pump, pv, wet_appliance"


def doc(
    agent: str | None = AGENT,
    broker: str | None = BROKER,
    devices: dict[str, str] | None = None,
    extra: str = "",
) -> str:
    """A small valid file (one simulated EV on the loopback broker), with parts replaced."""
    parts = []
    if agent is not None:
        parts.append("[agent]\n" + agent)
    if broker is not None:
        parts.append("[broker]\n" + broker)
    for dev, table in ({"ev": EV} if devices is None else devices).items():
        parts.append(f"[devices.{dev}]\n" + table)
    return "\n".join(parts) + extra


def dev(table: str) -> str:
    return doc(devices={"ev": table})


CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    # unknown keys, with a hint when one is close
    "near miss in [agent]": (
        doc(AGENT + "contro_interval_s = 60\n"),
        [("agent.contro_interval_s", "unknown key (did you mean 'control_interval_s'?)")],
    ),
    "no near miss": (doc(AGENT + "colour = 'red'\n"), [("agent.colour", "unknown key")]),
    "near miss of a table": (
        doc(extra="[devics.x]\ndriver = 'sim'\n"),
        [("devics", "unknown key (did you mean 'devices'?)")],
    ),
    "near miss in [broker]": (
        doc(broker=BROKER + "passwd_file = 'x'\n"),
        [("broker.passwd_file", "unknown key (did you mean 'password_file'?)")],
    ),
    "near miss in [clock]": (
        doc(extra="[clock]\nstart = 1767225600\nsped = 60\n"),
        [("clock.sped", "unknown key (did you mean 'speed'?)")],
    ),
    # wrong types
    "text for a number": (
        doc(AGENT + 'resolution_s = "900"\n'),
        [("agent.resolution_s", "must be int, not str ('900')")],
    ),
    "bool for a number": (
        doc(AGENT + "meter_batch_slots = true\n"),
        [("agent.meter_batch_slots", "must be int, not bool (True)")],
    ),
    "float for an int": (
        doc(AGENT + "control_interval_s = 60.0\n"),
        [("agent.control_interval_s", "must be int, not float (60.0)")],
    ),
    "text for a float": (
        doc(broker=BROKER + 'backoff_max_s = "x"\n'),
        [("broker.backoff_max_s", "must be float, not str ('x')")],
    ),
    "number for a choice": (
        doc(AGENT + "trading_mode = 5\n"),
        [("agent.trading_mode", "must be str, not int (5)")],
    ),
    "number for a device's text": (
        dev(EV + "grid_node = 3\n"),
        [("devices.ev.grid_node", "must be str, not int (3)")],
    ),
    # values out of range or not among the choices
    "resolution": (
        doc(AGENT + "resolution_s = 1000\n"),
        [("agent.resolution_s", "900 to 3600 s, dividing a day (900, 1200, 1800, 3600)")],
    ),
    "control interval": (
        doc(AGENT + "control_interval_s = 7\n"),
        [("agent.control_interval_s", "must divide resolution_s (900)")],
    ),
    "zero control interval": (
        doc(AGENT + "control_interval_s = 0\n"),
        [("agent.control_interval_s", "must divide resolution_s (900)")],
    ),
    "keepalive": (doc(broker=BROKER + "keepalive_s = 1\n"), [("broker.keepalive_s", "5 to 65535")]),
    "session expiry": (
        doc(broker=BROKER + "session_expiry_s = 60\n"),
        [("broker.session_expiry_s", "at least 86400 (one day)")],
    ),
    "zero": (doc(AGENT + "retention_days = 0\n"), [("agent.retention_days", "must be positive")]),
    "infinite": (
        doc(AGENT + "retention_days = inf\n"),
        [("agent.retention_days", "must be positive")],
    ),
    "negative clock speed": (
        doc(extra="[clock]\nstart = 1767225600\nspeed = -1\n"),
        [("clock.speed", "must be positive")],
    ),
    "backoff order": (
        doc(broker=BROKER + "backoff_initial_s = 10\nbackoff_max_s = 5\n"),
        [("broker.backoff_max_s", "must not be below backoff_initial_s")],
    ),
    "trading mode": (
        doc(AGENT + 'trading_mode = "auction"\n'),
        [("agent.trading_mode", "one of 'delegated', 'direct'")],
    ),
    "log level": (
        doc(AGENT + 'log_level = "loud"\n'),
        [("agent.log_level", "one of 'debug', 'info', 'warning', 'error'")],
    ),
    "agent id": (
        doc('id = "bad id!"\n'),
        [("agent.id", "letters, digits and _.:@- only (it is used in MQTT topics)")],
    ),
    # missing keys and tables
    "agent id missing": (doc(""), [("agent.id", "missing")]),
    "[agent] missing": (doc(None), [("agent", "missing table"), ("agent.id", "missing")]),
    "[broker] missing": (
        doc(broker=None),
        [("broker", "missing table"), ("broker.url", "missing")],
    ),
    "[agent] not a table": (
        'agent = "x"\n' + doc(None),
        [("agent", "must be a table, not str"), ("agent.id", "missing")],
    ),
    "broker url missing": (doc(broker=""), [("broker.url", "missing")]),
    "clock start missing": (doc(extra="[clock]\nspeed = 60\n"), [("clock.start", "missing")]),
    # device tables
    "no device": (
        doc(devices={}),
        [("devices", "no device configured (add a [devices.<id>] table)")],
    ),
    "device not a table": (
        doc() + "\n[devices]\nx = 5\n",
        [("devices.x", "must be a table, not int")],
    ),
    "device id": (
        doc(devices={'"bad id!"': EV}),
        [("devices.bad id!", "letters, digits and _.:@- only (it is used in MQTT topics)")],
    ),
    "device trading mode": (
        dev(EV + 'trading_mode = "x"\n'),
        [("devices.ev.trading_mode", "one of 'delegated', 'direct'")],
    ),
    "unknown driver": (
        dev('driver = "no-such-driver"\n'),
        [("devices.ev.driver", f"unknown driver 'no-such-driver'; known: {DRIVERS}")],
    ),
    "unknown generator": (
        dev('driver = "sim"\nmodel = "ev"\ngenerator = "sauna"\n'),
        [("devices.ev.generator", f"unknown generator 'sauna'; known: {GENERATORS}")],
    ),
    "generator that does not import": (
        dev('driver = "sim"\nmodel = "ev"\ngenerator = "tests.agent.plugins:Nope"\n'),
        [
            (
                "devices.ev.generator",
                "cannot import generator 'tests.agent.plugins:Nope': "
                "module 'tests.agent.plugins' has no attribute 'Nope'",
            )
        ],
    ),
    "driver's own key": (
        dev('driver = "sim"\nmodel = "rocket"\ngenerator = "ev"\n'),
        [
            (
                "devices.ev.model",
                "'rocket' is not one of 'battery', 'boiler', 'ev', 'freezer', 'grid_asset', "
                "'heat_pump', 'pv', 'wet_appliance'",
            )
        ],
    ),
    # direct trading's prices (docs/agent.md, "Prices of direct trading")
    "negative ask": (
        dev(EV + DIRECT + "ask_up_eur_per_kwh = -0.1\n"),
        [
            (
                "devices.ev.ask_up_eur_per_kwh",
                "-0.1 is negative: an ask is what a kWh moved earns, at least 0",
            )
        ],
    ),
    "ask not a number": (
        dev(EV + DIRECT + 'ask_down_eur_per_kwh = "0.1"\n'),
        [("devices.ev.ask_down_eur_per_kwh", "expected a number, got '0.1'")],
    ),
    "asks and a priority": (
        dev(EV + DIRECT + "ask_up_eur_per_kwh = 0.1\ncomfort_priority = 2\n"),
        [
            (
                "devices.ev.comfort_priority",
                "give comfort_priority or asks (ask_up_eur_per_kwh, ask_down_eur_per_kwh), "
                "not both",
            )
        ],
    ),
    "priority out of range": (
        dev(EV + DIRECT + "comfort_priority = 6\n"),
        [
            (
                "devices.ev.comfort_priority",
                "6: a whole number from 0 (moves for nothing) to 5 (comfort first)",
            )
        ],
    ),
    "asks and the lowest price": (
        dev(EV + DIRECT + "ask_up_eur_per_kwh = 0.1\nprice_min_eur_per_kwh = 0.05\n"),
        [
            (
                "devices.ev.price_min_eur_per_kwh",
                "give price_min_eur_per_kwh or asks (ask_up_eur_per_kwh, ask_down_eur_per_kwh, "
                "comfort_priority), not both: the ask is the least price of a slot",
            )
        ],
    ),
    "highest price below the ask": (
        dev(EV + DIRECT + "comfort_priority = 5\nprice_max_eur_per_kwh = 0.3\n"),
        [("devices.ev.price_max_eur_per_kwh", "0.3 is below the ask 0.5")],
    ),
    "asks in delegated mode": (
        dev(EV + "ask_up_eur_per_kwh = 0.1\n"),
        [
            (
                "devices.ev.ask_up_eur_per_kwh",
                "prices direct trading, but ev trades in delegated mode (its contract sets the "
                'price); set trading_mode = "direct" here or in [agent]',
            )
        ],
    ),
    "asks of a device without a generator": (
        dev('driver = "sim"\nmodel = "ev"\n' + DIRECT + "comfort_priority = 1\n"),
        [("devices.ev.comfort_priority", "unknown key for driver 'sim'")],
    ),
    "market account misspelt": (
        doc(extra='\n[market]\nid = "feeder-1"\nacount = "plant-1"\n'),
        [
            ("market.acount", "unknown key (did you mean 'account'?)"),
            ("market.account", "missing"),
        ],
    ),
    # the broker's address and secrets
    "scheme": (
        doc(broker='url = "ftp://127.0.0.1"\n'),
        [("broker.url", "scheme must be mqtt:// or mqtts://, not 'ftp'")],
    ),
    "plain text off loopback": (
        doc(broker='url = "mqtt://broker.example.net"\n'),
        [
            (
                "broker.url",
                "plain mqtt:// to broker.example.net, which is not loopback, would send "
                "everything in clear; use mqtts:// (or set allow_plaintext = true on a trusted "
                "network)",
            )
        ],
    ),
    "credentials in the url": (
        doc(broker='url = "mqtt://u:p@127.0.0.1"\n'),
        [("broker.url", "put credentials in username and password_file, not the URL")],
    ),
    "port": (doc(broker='url = "mqtt://127.0.0.1:99999"\n'), [("broker.url", "bad port")]),
    "password twice": (
        doc(broker=BROKER + 'username = "u"\npassword = "x"\npassword_file = "p"\n'),
        [("broker.password", "give password or password_file, not both")],
    ),
    "password without user": (
        doc(broker=BROKER + 'password = "x"\n'),
        [("broker.username", "a password needs a username")],
    ),
    "password file missing": (
        doc(broker=BROKER + 'username = "u"\npassword_file = "nope"\n'),
        [("broker.password_file", "cannot read {dir}/nope: No such file or directory")],
    ),
    "ca file missing": (
        doc(broker='url = "mqtts://127.0.0.1"\nca_file = "nope.pem"\n'),
        [("broker.ca_file", "{dir}/nope.pem is not a readable file")],
    ),
    "key without certificate": (
        doc(broker='url = "mqtts://127.0.0.1"\nkey_file = "nope.key"\n'),
        [
            ("broker.key_file", "{dir}/nope.key is not a readable file"),
            ("broker.key_file", "a key_file needs a cert_file"),
        ],
    ),
    # the file itself, with its line
    "not TOML": (
        "[agent\n",
        [
            (
                "",
                "not valid TOML: Expected ']' at the end of a table declaration "
                "(at line 1, column 7)",
            )
        ],
    ),
}


def check(tmp_path, text: str | bytes) -> tuple[int, list[tuple[str, str]]]:
    path = tmp_path / "foa.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    result = CliRunner().invoke(main, ["config", "check", str(path), "--json"])
    report = json.loads(result.output)
    return result.exit_code, [(e["key"], e["message"]) for e in report["errors"]]


def test_the_small_file_is_good(tmp_path):
    assert check(tmp_path, doc()) == (0, [])


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_mistake_gets_its_message(tmp_path, case):
    text, expected = CASES[case]
    code, errors = check(tmp_path, text)
    assert code == 1
    assert errors == [(key, msg.format(dir=tmp_path)) for key, msg in expected]


def test_text_that_is_not_utf8(tmp_path):
    code, errors = check(tmp_path, b"\xff\xfe[agent]\n")
    assert code == 1
    assert errors == [
        (
            "",
            "not UTF-8 text: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        )
    ]


def test_every_table_is_checked_even_when_others_are_wrong(tmp_path):
    """One line per mistake from every table at once (a table's unknown keys first, then its
    values); a value that both the driver and the generator read is wrong once, not twice."""
    text = doc(
        'id = "bad id!"\ncontro_interval_s = 60\n',
        BROKER + "keepalive_s = 1\n",
        {"ev": EV + "battery_kwh = 0\n", "x": 'driver = "sim"\nmodel = "rocket"\n'},
        extra="[clock]\nsped = 60\n",
    )
    code, errors = check(tmp_path, text)
    assert code == 1
    assert errors == [
        ("agent.contro_interval_s", "unknown key (did you mean 'control_interval_s'?)"),
        ("agent.id", "letters, digits and _.:@- only (it is used in MQTT topics)"),
        ("broker.keepalive_s", "5 to 65535"),
        ("clock.sped", "unknown key (did you mean 'speed'?)"),
        ("clock.start", "missing"),
        ("devices.ev.battery_kwh", "0 is outside [1, 500]"),
        ("devices.x.model", "'rocket' is not one of 'battery', 'boiler', 'ev', 'freezer', "
         "'grid_asset', 'heat_pump', 'pv', 'wet_appliance'"),
    ]  # fmt: skip


def test_a_misspelt_device_key_is_not_silently_ignored(tmp_path):
    """Driver and generator share the device's table; a key that neither reads is a typo
    (``batery_kwh`` would otherwise leave the car at the default 60 kWh)."""
    code, errors = check(tmp_path, dev(EV + "batery_kwh = 40\nseed = 3\n"))
    assert code == 1
    assert errors == [
        (
            "devices.ev.batery_kwh",
            "unknown key for driver 'sim' and generator 'ev' (did you mean 'battery_kwh'?)",
        )
    ]


def test_a_device_without_driver_is_told_so_once(tmp_path):
    code, errors = check(tmp_path, dev('generator = "ev"\n'))
    assert (code, errors) == (1, [("devices.ev.driver", "missing")])
