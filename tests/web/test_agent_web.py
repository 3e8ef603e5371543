"""The parts of the agent's local page that need no browser: the ``[web]`` table as ``foa
config check`` reads it, the password file, the comment-keeping TOML edit, the settings
table against the generators, and the HTTP server's limits on a real socket."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from agent.plugins import build_generator
from agent.web import hash_password, parse_hash
from agent.web._editable import FIELDS
from agent.web._http import MAX_BODY, HttpServer, Request, Response
from agent.web._tomledit import EditError, set_device_values
from tests.waiting import until

ROOT = Path(__file__).resolve().parents[2]
FOA = [sys.executable, "-c", "from agent.cli import main; main()"]
BASE = """\
[agent]
id = "house-1"

[broker]
url = "mqtt://127.0.0.1:1883"

[devices.hp]
driver = "sim"
model = "heat_pump"
generator = "heat_pump"
"""


def _check(tmp_path: Path, web: str) -> dict:
    path = tmp_path / "foa.toml"
    path.write_text(BASE + "\n[web]\n" + web)
    out = subprocess.run(
        [*FOA, "config", "check", str(path), "--json"], capture_output=True, text=True, timeout=60
    )
    return json.loads(out.stdout)


# -- [web] in foa.toml --------------------------------------------------------------------------


def test_the_page_is_off_by_default_and_on_loopback(tmp_path):
    path = tmp_path / "foa.toml"
    path.write_text(BASE)
    web = load_config(path).web
    assert not web.enabled and web.listen == "127.0.0.1" and web.loopback
    assert web.password is None


def test_config_check_refuses_the_page_beyond_loopback_without_a_password(tmp_path):
    doc = _check(tmp_path, 'enabled = true\nlisten = "0.0.0.0"\n')
    assert not doc["ok"]
    (err,) = doc["errors"]
    assert err["key"] == "web.password_file"
    assert "0.0.0.0, which is not loopback" in err["message"]
    # also while it is off: turning it on later must not expose it
    doc = _check(tmp_path, 'enabled = false\nlisten = "192.168.1.20"\n')
    assert [e["key"] for e in doc["errors"]] == ["web.password_file"]


def test_config_check_refuses_a_password_file_others_can_read_and_wrong_keys(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("a good long password\n")
    secret.chmod(0o644)
    doc = _check(tmp_path, 'enabled = true\nlisten = "0.0.0.0"\npassword_file = "pw"\n')
    (err,) = doc["errors"]
    assert err["key"] == "web.password_file" and "chmod 600" in err["message"]
    doc = _check(tmp_path, 'enabled = true\nlisten = "localhost"\nprot = 80\n')
    keys = {e["key"]: e["message"] for e in doc["errors"]}
    assert "is not an IP address" in keys["web.listen"]
    assert "did you mean 'port'" in keys["web.prot"]
    secret.chmod(0o600)
    doc = _check(tmp_path, 'enabled = true\nlisten = "0.0.0.0"\npassword_file = "pw"\n')
    assert doc["ok"], doc


def test_foa_web_password_writes_a_hash_only_its_owner_reads(tmp_path):
    path = tmp_path / "web-password"
    out = subprocess.run(
        [*FOA, "web", "password", str(path), "--stdin"],
        input="a good long password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text().strip()
    assert "a good long password" not in text
    h = parse_hash(text)
    assert h is not None and h.matches("a good long password") and not h.matches("a guess")
    short = subprocess.run(
        [*FOA, "web", "password", str(tmp_path / "x"), "--stdin"],
        input="short\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    assert not (tmp_path / "x").exists()


def test_a_password_hash_round_trips_and_junk_is_not_one():
    h = hash_password("secret words", iterations=1000)
    again = parse_hash(h.encode())
    assert again == h and again.matches("secret words") and not again.matches("secret word")
    for junk in ("secret words", "pbkdf2_sha256$x$y$z", "pbkdf2_sha256$10$!!$!!", ""):
        assert parse_hash(junk) is None


# -- the settings the page edits ----------------------------------------------------------------

MINIMAL = {"wet_appliance": {}, "doms": {}}


@pytest.mark.parametrize("generator", sorted(FIELDS))
def test_each_setting_is_read_by_its_generator_with_the_default_shown(generator):
    fields = FIELDS[generator]
    assert fields
    base = dict(MINIMAL.get(generator, {}))
    plain = build_generator(generator, params=base)
    for f in fields:
        # the generator reads and checks the key: a wrong value is refused, naming it
        with pytest.raises(ConfigError) as exc:
            build_generator(generator, params={**base, f.key: "x"}, key_prefix="devices.d.")
        assert exc.value.key.startswith(f"devices.d.{f.key}"), exc.value
        if f.default is None:
            continue
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        given = build_generator(generator, params={**base, f.key: default})
        assert _state(given) == _state(plain), f"{generator}.{f.key}: default is not {default}"


def _state(gen) -> dict:
    return {k: v for k, v in vars(gen).items() if k not in ("params", "key_prefix")}


# -- changing foa.toml and keeping its comments -------------------------------------------------

EXAMPLE = (ROOT / "examples" / "foa.toml").read_text()


def test_an_edit_changes_the_values_and_nothing_else():
    out = set_device_values(
        EXAMPLE,
        {("heat_pump", "seed"): 7, ("boiler", "t_max_c"): 70.5, ("boiler", "volume_l"): None},
    )
    removed = [ln for ln in EXAMPLE.splitlines() if ln not in out.splitlines()]
    added = [ln for ln in out.splitlines() if ln not in EXAMPLE.splitlines()]
    assert removed == ["seed = 1", "volume_l = 200"]
    assert added == ["seed = 7", "t_max_c = 70.5"]
    # the comments that were aligned stay in their column
    text = '[devices.hp]\ndriver = "sim"\nt_min_c = 19      # cold nights\n'
    assert set_device_values(text, {("hp", "t_min_c"): 18.5}).splitlines()[2] == (
        "t_min_c = 18.5    # cold nights"
    )


def test_a_list_over_several_lines_is_replaced_whole():
    text = '[devices.b]\ndriver = "sim"\nready_by_h = [\n  6,   # morning\n  18,\n]\nseed = 2\n'
    out = set_device_values(text, {("b", "ready_by_h"): [7, 19.5]})
    assert out == '[devices.b]\ndriver = "sim"\nready_by_h = [7, 19.5]\nseed = 2\n'


@pytest.mark.parametrize(
    "text",
    [
        'devices.hp = { driver = "sim" }\n',
        '[devices]\nhp.driver = "sim"\n',
        '[devices.hp]\ndriver = "sim"\n[devices.hp.extra]\nx = 1\nt_min_c = 1\n',
    ],
    ids=["inline", "dotted", "sub-table"],
)
def test_a_layout_that_cannot_be_edited_faithfully_is_refused(text):
    try:
        out = set_device_values(text, {("hp", "t_min_c"): 18})
    except EditError as exc:
        assert "by hand" in str(exc)
    else:  # what was written is exactly the change (the sub-table case can be)
        import tomllib

        assert tomllib.loads(out)["devices"]["hp"]["t_min_c"] == 18


# -- the HTTP server's limits, on a real socket -------------------------------------------------


async def _exchange(raw: bytes) -> bytes:
    async def handler(req: Request) -> Response:
        return Response(body=f"{req.method} {req.path} {len(req.body)}".encode())

    server = HttpServer(host="127.0.0.1", port=0, handler=handler, read_timeout_s=2)
    _, port = await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return data
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n", b"200"),
        (b"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"200"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 20_000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
        (f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), b"413"),
        (b"GET http://elsewhere/ HTTP/1.1\r\n\r\n", b"400"),
    ],
    ids=["get", "post", "garbage", "huge-header", "chunked", "huge-body", "absolute"],
)
def test_the_server_answers_every_request_and_refuses_what_it_does_not_take(raw, status):
    data = asyncio.run(_exchange(raw))
    assert data.split(b" ")[1] == status, data[:200]
    assert b"Connection: close" in data


def test_a_silent_client_is_dropped_after_the_read_deadline():
    async def run() -> bytes:
        async def handler(req: Request) -> Response:
            return Response()

        server = HttpServer(host="127.0.0.1", port=0, handler=handler, read_timeout_s=0.3)
        _, port = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
            data = await asyncio.wait_for(reader.read(), 5)  # the server closes: EOF
            writer.close()
            return data
        finally:
            await server.close()

    assert asyncio.run(run()) == b""


def test_the_agent_loads_none_of_the_page_unless_it_is_enabled():
    probe = (
        "import agent.runtime, agent.cli, agent.config, sys\n"
        "print(any(m.startswith('agent.web') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_port_in_use_leaves_the_agent_running_without_its_page(tmp_path, broker):
    """The page is secondary: the agent logs that it could not listen and goes on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "foa.toml"
        path.write_text(
            BASE.replace("mqtt://127.0.0.1:1883", broker.url).replace(
                'id = "house-1"', f'id = "house-1"\nstore = "{tmp_path}/foa.db"\ndrain_s = 0'
            )
            + f"\n[web]\nenabled = true\nport = {port}\n"
        )
        from agent.clock import SimClock
        from agent.runtime import AgentRuntime

        cfg = load_config(path)
        rt = AgentRuntime(config=cfg, clock=SimClock(start=1_767_225_600, speed=3600))

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(rt.run(stop=stop))
            await until(lambda: rt.ticks >= 2, what="two turns of the agent's loop")
            stop.set()
            await task

        asyncio.run(run())
        assert rt.ticks >= 2 and rt.web is None


# -- the browser the page tests drive ------------------------------------------------------------


def test_without_any_chromium_the_page_tests_say_what_to_run(tmp_path, monkeypatch):
    """Neither Debian's browser nor playwright's: a failure naming the commands, not a skip."""
    from tests.web.browser import BrowserMissing, _check, chromium_path

    monkeypatch.delenv("ATP_CHROMIUM", raising=False)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-browsers"))
    assert chromium_path(debian=tmp_path / "chromium") is None
    with pytest.raises(BrowserMissing, match=r"make setup.*playwright install --with-deps"):
        _check(debian=tmp_path / "chromium")
    monkeypatch.setenv("ATP_CHROMIUM", str(tmp_path / "chrome"))
    with pytest.raises(BrowserMissing, match="not an executable file"):
        _check()
