"""The agent's local page in a real headless Chromium, served by a real ``foa run`` (simulated
devices, the test broker, an FMAN peer answering) on data made by a short real run.

Every page loads without console errors or failed requests (the ``page`` fixture checks it
after each test), shows the figures ``foa status --json`` and ``foa offers --json`` give,
needs a login when it listens beyond loopback, refuses a bad configuration edit naming the
key ``foa config check`` names (the file unchanged) and writes a good one, comments kept.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import stat
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.web.sites import AGENT_DEVICES, AGENT_PAGES, Running, foa, foa_json, run_agent

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def site(broker, tmp_path_factory) -> Any:
    """The page on loopback, no password."""
    with run_agent(tmp_path_factory.mktemp("agent-page"), broker=broker, warm_up_s=4) as s:
        yield s


@pytest.fixture(scope="module")
def locked(broker, tmp_path_factory) -> Any:
    """The page on every interface (0.0.0.0), so with a password."""
    work = tmp_path_factory.mktemp("agent-page-locked")
    with run_agent(
        work, broker=broker, agent="house-8", web={"listen": "0.0.0.0"}, password=PASSWORD,
        warm_up_s=0,
    ) as s:  # fmt: skip
        yield s


def _stable(site: Running, command: str, read_page) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    """The page's figures and the CLI's, taken while the CLI's held still (the agent runs on:
    the outbox drains, a duty cycle may end); retried until they did, within a deadline."""
    work = site.info["work"]
    deadline = time.monotonic() + 30
    while True:
        before = foa_json(command, "-c", "foa.toml", cwd=work)
        shown = read_page()
        after = foa_json(command, "-c", "foa.toml", cwd=work)
        if before == after:
            return before, shown
        assert time.monotonic() < deadline, "the agent's figures never held still"


# -- every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", AGENT_PAGES, ids=[p.name for p in AGENT_PAGES])
def test_each_page_loads_without_console_errors(site, page, spec):
    response = page.goto(site.url(spec.path))
    assert response is not None and response.status == 200
    page.wait_for_selector(spec.ready)
    assert page.inner_text("#agent-id") == site.info["agent"]
    headers = response.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    # the page's own files, and nothing from elsewhere
    hosts = {urlsplit(u).netloc for u in page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)")}  # fmt: skip
    assert hosts == {urlsplit(site.base_url).netloc}


def test_overview_shows_what_foa_status_says(site, page):
    def read() -> dict[str, Any]:
        page.goto(site.url("/"))
        page.wait_for_selector("#devices")
        ids = [
            "outbox-waiting", "outbox-unanswered", "outbox-resent", "outbox-dead",
            "outbox-quarantined", "outbox-dropped", "broker", "connection-state",
        ]  # fmt: skip
        shown = {i: page.inner_text(f"#{i}") for i in ids}
        shown["offers"] = {
            el.get_attribute("id").removeprefix("offers-"): el.inner_text()
            for el in page.query_selector_all("#offer-counts td")
        }
        shown["last"] = {
            dev: page.inner_text(f'[id="device-{dev}"] .last-kwh') for dev in AGENT_DEVICES
        }
        return shown

    status, shown = _stable(site, "status", read)
    out = status["outbox"]
    assert shown["outbox-waiting"] == str(out["waiting"])
    assert shown["outbox-unanswered"] == str(out["unanswered"])
    assert shown["outbox-resent"] == str(out["resent"])
    assert shown["outbox-dead"] == str(out["dead_letters"])
    assert shown["outbox-quarantined"] == str(out["quarantined"])
    assert shown["outbox-dropped"] == str(status["dropped_meter_batches"])
    assert shown["broker"] == status["connection"]["broker"]
    assert shown["connection-state"].startswith("online")
    assert status["offers"], "the run made no offers"
    assert shown["offers"] == {state: str(n) for state, n in status["offers"].items()}
    last = {r["device"]: r["energy_kwh"] for r in status["last_readings"]}
    assert set(last) == set(AGENT_DEVICES)
    for dev, kwh in last.items():
        assert shown["last"][dev] == f"{abs(kwh) if round(kwh, 3) == 0 else kwh:.3f} kWh"


def test_offers_page_lists_what_foa_offers_says(site, page):
    def read() -> list[tuple[str, str, str, str]]:
        page.goto(site.url("/offers"))
        page.wait_for_selector("#offers")
        return [
            (
                row.get_attribute("id").removeprefix("offer-"),
                row.query_selector(".state").inner_text(),
                row.query_selector(".revision").inner_text(),
                row.query_selector(".plan").inner_text(),
            )
            for row in page.query_selector_all("#offers tbody tr")
        ]

    offers, shown = _stable(site, "offers", read)
    assert offers, "the run left no live offer"

    def plan(p: dict[str, Any] | None) -> str:
        if p is None:
            return "-"
        return "default" if p["source"] == "default" else f"schedule v{p['version']}"

    expected = [(o["id"], o["state"], str(o["revision"]), plan(o["plan"])) for o in offers]
    assert shown == expected
    assert page.inner_text("#offer-count") == str(len(offers))
    # FMAN's schedules are in force: the chart draws them
    assert any(o["plan"] and o["plan"]["source"] == "fman" for o in offers)
    assert page.query_selector_all("#plans-chart path")


def test_the_charts_say_dates_units_slot_length_and_what_each_line_is(site, page):
    page.goto(site.url("/"))
    chart = page.query_selector("#metered-chart")
    texts = [t.text_content() for t in chart.query_selector_all("svg.chart text")]
    assert any(re.fullmatch(r"2026-01-01", t) for t in texts), texts  # a date on the time axis
    assert any(re.fullmatch(r"\d\d:\d\d", t) for t in texts)  # times of day
    assert "kW (mean over the slot)" in texts  # the unit
    assert "time (UTC, the agent's clock)" in texts
    legend = [li.inner_text() for li in chart.query_selector_all("ul.legend li")]
    assert sorted(legend) == sorted(AGENT_DEVICES)
    lines = chart.query_selector_all("svg.chart path")
    assert len(lines) == len(AGENT_DEVICES)
    assert "15 min" in chart.query_selector("figcaption").inner_text()


def test_tables_sort_by_the_column_clicked(site, page):
    page.goto(site.url("/"))
    page.wait_for_selector("#devices th button")

    def column(cls: str) -> list[str]:
        return [c.get_attribute("data-v") or c.inner_text()
                for c in page.query_selector_all(f"#devices tbody td.{cls}")]  # fmt: skip

    page.click("#devices th:nth-child(1) button")
    assert column("device") == sorted(AGENT_DEVICES)
    page.click("#devices th:nth-child(1) button")
    assert column("device") == sorted(AGENT_DEVICES, reverse=True)
    assert page.get_attribute("#devices th:nth-child(1)", "aria-sort") == "descending"
    page.click("#devices th:nth-child(5) button")  # the energy register, as numbers
    registers = [float(v) for v in column("register")]
    assert len(registers) == len(AGENT_DEVICES) and registers == sorted(registers)


# -- editing the configuration ------------------------------------------------------------------


def test_a_bad_edit_is_refused_with_the_key_config_check_names_and_the_file_is_unchanged(
    site, page, tmp_path
):
    config: Path = site.info["config"]
    before = config.read_bytes()
    key = "devices.heat_pump.t_max_c"
    page.goto(site.url("/config"))
    page.fill(f'[id="{key}"]', "20.2")  # t_min_c is 20: the band must be 0.5 K wide
    page.click("#save")
    page.wait_for_selector("#errors")
    assert config.read_bytes() == before
    items = page.query_selector_all("#errors li")
    assert [i.get_attribute("data-key") for i in items] == [key]
    # the words foa config check uses for the same file
    copy = tmp_path / "foa.toml"
    shutil.copy(config, copy)
    copy.write_text(
        copy.read_text().replace("[devices.heat_pump]\n", "[devices.heat_pump]\nt_max_c = 20.2\n")
    )
    checked = json.loads(foa("config", "check", str(copy), "--json", cwd=tmp_path).stdout)
    assert checked["errors"] == [{"key": key, "message": items[0].inner_text().split(": ", 1)[1]}]
    assert page.get_attribute(f'[id="{key}"]', "aria-invalid") == "true"
    assert page.input_value(f'[id="{key}"]') == "20.2"  # what was typed stays to be fixed
    # not a number at all
    page.fill(f'[id="{key}"]', "warm")
    page.click("#save")
    page.wait_for_selector("#errors")
    assert "expected a number, got 'warm'" in page.inner_text(f'#errors li[data-key="{key}"]')
    assert config.read_bytes() == before


def test_a_good_edit_is_written_atomically_with_its_comments_and_asks_for_a_restart(site, page):
    config: Path = site.info["config"]
    before = config.read_text()
    mode = stat.S_IMODE(config.stat().st_mode)
    key = "devices.ev.price_max_eur_per_kwh"
    page.goto(site.url("/config"))
    page.fill(f'[id="{key}"]', "0.42")
    page.fill('[id="devices.heat_pump.setpoint_c"]', "21.5")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert "restart" in page.inner_text("#saved")
    after = config.read_text()
    data = tomllib.loads(after)
    assert data["devices"]["ev"]["price_max_eur_per_kwh"] == 0.42
    assert data["devices"]["heat_pump"]["setpoint_c"] == 21.5
    # nothing else changed: every line of the file is still there, comments included
    assert [ln for ln in before.splitlines() if ln not in after.splitlines()] == []
    assert len(after.splitlines()) == len(before.splitlines()) + 2
    assert stat.S_IMODE(config.stat().st_mode) == mode
    assert not list(config.parent.glob(".foa.toml.*"))  # no temporary file left
    checked = foa("config", "check", str(config), cwd=config.parent)
    assert checked.returncode == 0, checked.stderr
    # the form now shows the file's values, and says the agent runs with the old ones
    page.goto(site.url("/config"))
    assert page.input_value(f'[id="{key}"]') == "0.42"
    assert "restart" in page.inner_text("#restart")


# -- who may see and change it ------------------------------------------------------------------


def test_off_loopback_the_page_needs_the_password(locked, page):
    base = locked.base_url
    page.goto(base)
    assert urlsplit(page.url).path == "/login"
    page.fill("#password", "wrong password")
    page.click("#login")
    page.wait_for_selector("#login-error")
    assert page.inner_text("#login-error") == "Wrong password."
    assert not page.query_selector("#devices")
    locked.login(page)
    page.wait_for_selector("#devices")
    assert page.inner_text("#agent-id") == "house-8"
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "foa_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click(".logout button")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(base + "offers")
    assert urlsplit(page.url).path == "/login"
    # the password is never written to the log
    log = (locked.info["work"] / "foa.log").read_text()
    assert "failed login" in log and PASSWORD not in log and "wrong password" not in log


def _request(site: Running, method: str, path: str, *, headers=None, body: str = ""):  # type: ignore[no-untyped-def]
    u = urlsplit(site.base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body=body.encode(), headers=headers or {})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read().decode()


def test_without_a_login_nothing_is_shown_or_changed(locked):
    for path in ("/", "/offers", "/config", "/status.json"):
        status, headers, _ = _request(locked, "GET", path)
        assert status == 303 and headers["Location"].startswith("/login"), path
    status, _, _ = _request(
        locked, "POST", "/config", body="devices.ev.price_max_eur_per_kwh=9",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 403


def test_a_form_without_its_token_or_from_another_site_is_refused(site):
    config: Path = site.info["config"]
    status, headers, body = _request(site, "GET", "/config")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    version = re.search(r'name="version" value="([^"]+)"', body).group(1)
    token = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    before = config.read_bytes()
    form = f"version={version}&devices.ev.price_max_eur_per_kwh=9"
    common = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    assert _request(site, "POST", "/config", headers=common, body=form)[0] == 403
    assert _request(site, "POST", "/config", headers=common, body=f"{form}&csrf=x{token}")[0] == 403
    other = {**common, "Origin": "http://example.net"}
    assert _request(site, "POST", "/config", headers=other, body=f"{form}&csrf={token}")[0] == 403
    assert config.read_bytes() == before
    # a name that points at 127.0.0.1 from elsewhere (DNS rebinding) gets nothing
    status, _, _ = _request(site, "GET", "/status.json", headers={"Host": "attacker.example:80"})
    assert status == 403
    # the JSON is the one foa status prints
    status, _, body = _request(site, "GET", "/status.json")
    assert status == 200 and json.loads(body)["agent"] == site.info["agent"]
