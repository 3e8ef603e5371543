"""FMAN's operator dashboard ``atp web`` in a real headless Chromium, on a store made by a
short real run (``atp demo``: Mosquitto, an FMAN worker and two simulated agents through a
day, then ``atp settle`` of its month).

Every page loads without console errors or failed requests (the ``page`` fixture checks it
after each test) and shows one figure the matching ``atp ... --json`` gives for the same
store; a login is required; a viewer cannot open the operator's page; an open page follows
the store while it changes; the server refuses to listen beyond loopback without accounts.
"""

from __future__ import annotations

import os
import stat
import time
from urllib.parse import urlsplit

import pytest

from cloud.fman.store import open_store
from tests.web.sites import (
    FMAN_PAGES,
    FMAN_PERIOD,
    FMAN_USERS,
    atp,
    atp_json,
    fman_store,
    run_fman_web,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fman_store(tmp_path_factory.mktemp("fman-web"))


@pytest.fixture(scope="module")
def site(store, tmp_path_factory):
    with run_fman_web(tmp_path_factory.mktemp("fman-web-site"), db=store) as s:
        yield s


def _in(site, page, path: str, user: str = "olga"):
    site.login(page, user)
    response = page.goto(site.url(path))
    assert response is not None
    return response


# -- every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FMAN_PAGES, ids=[p.name for p in FMAN_PAGES])
def test_each_page_loads_without_console_errors(site, page, spec):
    response = _in(site, page, spec.path)
    assert response.status == 200
    page.wait_for_selector(spec.ready)
    assert page.inner_text("#user") == "olga"
    headers = response.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    hosts = {urlsplit(u).netloc for u in page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name)")}  # fmt: skip
    assert hosts == {urlsplit(site.base_url).netloc}  # its own files, nothing from elsewhere


# -- one figure per page, against the command line ----------------------------------------------


@pytest.mark.parametrize("days", [2, 7])
def test_portfolio_shows_what_atp_portfolio_says(site, store, page, days):
    """The page's window (by default the two days up to the latest delivery; a week holds
    the whole short run) against `atp portfolio` of the same period, and of the whole store."""
    _in(site, page, f"/?days={days}")
    start = int(page.get_attribute("#window-start", "data-v") or "")
    end = int(page.get_attribute("#window-end", "data-v") or "")
    assert end - start == days * 86_400
    args = ("portfolio", "--store", str(store), "--from", str(start), "--to", str(end))
    cli = atp_json(*args, cwd=store.parent)
    everything = atp_json("portfolio", "--store", str(store), cwd=store.parent)
    assert cli["offers"] <= everything["offers"]
    if days == 7:
        assert cli["offers"] == everything["offers"]
    assert cli["offers"] > 0 and cli["slots"]
    assert page.inner_text("#offers") == str(cli["offers"])
    assert page.inner_text("#imbalance-scheduled") == f"{cli['imbalance_scheduled_kwh']:.3f} kWh"
    assert page.locator("#slots tbody tr").count() == len(cli["slots"])
    chart = page.inner_html("#portfolio-chart")
    for text in ("kWh per slot", "2026-01-01", "Slot length 15 min", "metered", "target"):
        assert text in chart
    # the market awards of the window net per slot, from the members' parts that
    # `atp market awards` lists
    members = atp_json("market", "awards", "--db", str(store), cwd=store.parent)["members"]
    net: dict[int, float] = {}
    for m in members:
        if start <= m["slot_start"] < end:
            net[m["slot_start"]] = net.get(m["slot_start"], 0.0) + m["kwh"]
    kwh = list(net.values())
    up, down = sum(k for k in kwh if k > 0), -sum(k for k in kwh if k < 0)
    assert page.inner_text("#awarded") == f"{up:.3f} / {down:.3f} kWh"
    assert ("market awards" in chart) == bool(kwh)


def test_agents_shows_what_atp_agents_list_says(site, store, page):
    cli = atp_json("agents", "list", "--store", str(store), cwd=store.parent)
    _in(site, page, "/agents")
    assert cli
    assert page.inner_text("#agents-count") == str(len(cli))
    online = sum(1 for r in cli if r["state"] == "online")
    assert page.inner_text("#agents-online") == str(online)
    for r in cli:
        row = page.locator("#agents tbody tr", has_text=r["agent"])
        assert row.locator("td").nth(8).inner_text() == str(r["offers"])


def test_offers_with_a_state_and_a_search(site, store, page):
    cli = atp_json("offers", "list", "--store", str(store), "--state", "executed", cwd=store.parent)
    assert cli
    _in(site, page, "/offers")
    page.select_option("#state", "executed")
    page.click("#search")
    page.wait_for_url("**/offers?**state=executed**")
    assert page.inner_text("#offers-count") == str(len(cli))
    ids = page.locator("#offers tbody tr td:first-child").all_inner_texts()
    assert sorted(ids) == sorted(r["id"] for r in cli)
    wanted = cli[0]["id"]
    page.fill("#q", wanted)
    page.click("#search")
    page.wait_for_url("**q=**")
    assert page.locator("#offers tbody tr td:first-child").all_inner_texts() == [wanted]


def test_tables_sort_by_a_column(site, page):
    _in(site, page, "/offers")
    cells = page.locator("#offers tbody tr td:nth-child(7)")  # the earliest start, a time

    def column() -> list[int]:
        return [int(v) for v in cells.evaluate_all("cs => cs.map(c => c.dataset.v)")]

    assert len(set(column())) > 1
    page.click("#offers thead th:nth-child(7) button")
    assert column() == sorted(column())
    page.click("#offers thead th:nth-child(7) button")
    assert column() == sorted(column(), reverse=True)


def test_counters_show_what_atp_fman_stats_says(site, store, page):
    cli = atp_json("fman", "stats", "--store", str(store), cwd=store.parent)
    assert cli
    _in(site, page, "/counters")
    for worker, values in cli.items():
        row = page.locator("#counters tbody tr", has=page.locator("td", has_text="offer.accepted"))
        col = page.locator("#counters thead th").all_inner_texts().index(worker)
        assert row.first.locator("td").nth(col).get_attribute("data-v") in (
            str(values["offer.accepted"]),
            str(int(values["offer.accepted"])),
        )


def test_settlement_shows_what_atp_kpi_says(site, store, page):
    cli = atp_json("kpi", "--period", FMAN_PERIOD, "--store", str(store), cwd=store.parent)
    bills = atp_json(
        "bill", "list", "--period", FMAN_PERIOD, "--store", str(store), cwd=store.parent
    )
    _in(site, page, "/settlement")
    assert page.inner_text("#period") == FMAN_PERIOD
    peak = cli["2.1.1.1.a"]["peak_demand_mw"]
    assert peak > 0
    assert f"peak demand {peak:.6f} MW" in page.inner_text("#kpis")
    assert page.locator("#kpis li").count() == 4
    shown = page.locator("#bills tbody tr td.num").count()
    assert shown == len(bills)  # the bills of the month's run, on both sides


# -- login and roles ----------------------------------------------------------------------------


def test_every_page_needs_a_login(site, page, watch):
    for spec in FMAN_PAGES:
        page.goto(site.url(spec.path))
        assert urlsplit(page.url).path == "/login"
        assert page.locator("#password").count() == 1
    page.fill("#name", "olga")
    page.fill("#password", "not the password")
    page.click("#login")
    page.wait_for_selector("#login-failed")
    # the operators' trail names the account tried, never the password
    trail = (site.info["work"] / "web.log").read_text()
    assert "failed login as 'olga' from 127.0.0.1" in trail
    assert "not the password" not in trail
    page.fill("#name", "olga")
    page.fill("#password", FMAN_USERS["olga"][1])
    page.click("#login")
    page.wait_for_url(site.url("/accounts"))  # back where it was going
    # a login form posted without the session's token is refused
    watch.allow.add(403)
    r = page.request.post(site.url("/login"), form={"name": "olga", "password": "x"})
    assert r.status == 403


def test_a_viewer_cannot_open_the_operators_page(site, page, watch):
    site.login(page, "vic")
    assert page.inner_text("#role") == "viewer"
    assert page.locator("nav a", has_text="Accounts").count() == 0
    watch.allow.add(403)
    response = page.goto(site.url("/accounts"))
    assert response is not None and response.status == 403
    assert "needs the operator role" in page.inner_text("#forbidden")
    assert page.locator("#accounts").count() == 0


def test_logging_out_ends_the_session(site, page):
    site.login(page)
    page.click("#logout")
    page.wait_for_url(site.url("/login"))
    page.goto(site.url("/"))
    assert urlsplit(page.url).path == "/login"


# -- live ---------------------------------------------------------------------------------------


def test_an_open_page_follows_the_store(site, store, page):
    """A worker writes its counters every second; the open page shows the new ones without
    being reloaded."""
    _in(site, page, "/counters")
    assert page.locator("#counters td", has_text="web.test").count() == 0
    with open_store(store) as s:
        s.put_stats("test-worker", {"web.test": 7.0}, at=time.time())
    page.wait_for_selector("#counters td:text-is('web.test')", timeout=15_000)
    assert "test-worker" in page.locator("#counters thead th").all_inner_texts()
    assert int(page.get_attribute("body", "data-updates") or 0) >= 1


# -- the command line ---------------------------------------------------------------------------


def test_no_accounts_means_loopback_only(store, tmp_path):
    out = atp(
        "web", "--store", str(store), "--host", "0.0.0.0", "--users", str(tmp_path / "none"),
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1
    assert "needs accounts" in out.stderr and "Traceback" not in out.stderr


def test_the_accounts_file_is_private_and_refused_when_not(site, store, tmp_path):
    accounts = site.info["accounts"]
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600
    text = accounts.read_text()
    assert all(pw not in text for _, pw in FMAN_USERS.values())
    assert "olga operator scrypt$" in text
    loose = tmp_path / "loose"
    loose.write_text(text)
    os.chmod(loose, 0o644)
    out = atp("web", "--store", str(store), "--users", str(loose), cwd=tmp_path)
    assert out.returncode == 1
    assert "chmod 600" in out.stderr and "Traceback" not in out.stderr
