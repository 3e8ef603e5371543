"""The dashboard's markets page (F2.FMAR6) in a real headless Chromium, over a real FMAR
store and its fmar.toml: its markets, the gate calendar, every gate with the depth of its
book and its result, the congestion registrations, the same counts as ``atp market list
--json``; an operator closes and reopens a market and changes its parameters (a refused
change leaves fmar.toml as it was); a viewer sees no action and is refused one it forges;
without a market store the page says how to give one."""

from __future__ import annotations

import json

import pytest

from cloud.fman.store import open_store
from cloud.fmar.config import load_config
from cloud.fmar.store import CongestionRow, GateRow, OrderRow, ResultRow, open_market_store
from tests.web.sites import T0, atp, atp_json, run_fman_web

FMAR_TOML = """# the markets of the page tests
[service]
store = "{store}"

# one node, a gate every hour
[markets.day-ahead]
kind = "two-sided"
nodes = ["n1"]
min_order_kwh = 0.0  # any size

[markets.congestion-n2]
kind = "many-to-many"
nodes = ["n1", "n2"]
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    work = tmp_path_factory.mktemp("markets-web")
    db = work / "fman.db"
    open_store(str(db)).close()
    mdb = work / "fmar.db"
    s = open_market_store(str(mdb))
    try:
        for market, nodes in (("day-ahead", ["n1"]), ("congestion-n2", ["n1", "n2"])):
            s.put_market(market, json.dumps({"kind": "two-sided", "nodes": nodes}), at=T0)
            for k in range(2):
                gate = f"g{k}"
                s.ensure_gate(
                    GateRow(
                        market=market, gate=gate, opens_at=T0 + k * 3600,
                        closes_at=T0 + k * 3600 + 1800, delivery_start=T0 + 86_400,
                        slots=96, resolution_s=900,
                    )
                )  # fmt: skip
                for i in range(3 + k):
                    side = "sell" if i % 3 else "request"
                    s.add_order(
                        OrderRow(
                            market=market, gate=gate, side=side, id=f"{gate}-o{i}",
                            party=f"house-{i}", entry="{}", received_at=T0,
                        )
                    )  # fmt: skip
            s.add_congestion(
                CongestionRow(
                    market=market, id=f"peak-{market}", party="dso", node=nodes[-1],
                    start=T0 + 86_400, kwh="[-2.0, -1.5]", limit="0.3", partial=True,
                    registered_at=T0 + 60,
                )
            )  # fmt: skip
            s.close_gate(market, "g0", at=T0 + 1800)
            s.record_result(
                ResultRow(
                    market=market, gate="g0", status="optimal", welfare_eur=12.5,
                    payload="{}", cleared_at=T0 + 1900,
                )
            )  # fmt: skip
    finally:
        s.close()
    (work / "fmar.toml").write_text(FMAR_TOML.format(store=mdb))
    return work, db, mdb


@pytest.fixture(scope="module")
def site(stores):
    work, db, _ = stores
    (work / "site").mkdir()
    extra = ("--market-config", str(work / "fmar.toml"))
    with run_fman_web(work / "site", db=db, extra=extra) as s:
        yield s


def test_the_markets_page_shows_every_gate_with_its_book_and_result(site, stores, page):
    work, _, mdb = stores
    site.login(page)
    response = page.goto(site.url("/markets"))
    assert response is not None and response.status == 200
    page.wait_for_selector("#gates")
    listed = atp_json("market", "list", "--store", str(mdb), cwd=work)
    assert listed
    assert int(page.inner_text("#markets-count")) == len(listed)
    assert int(page.inner_text("#gates-count")) == sum(m["gates"] for m in listed)
    rows = page.query_selector_all("#gates tbody tr")
    assert len(rows) == 4
    text = page.inner_text("#gates")
    assert "optimal" in text and "12.5" in text and "cleared" in text and "open" in text
    cleared = page.query_selector_all("#markets tbody tr")
    assert [r.inner_text().split("\t")[0] for r in cleared] and len(cleared) == 2
    # the calendar: the gate taking orders now and four after it, for each market
    assert len(page.query_selector_all("#calendar tbody tr")) == 2 * 5
    assert int(page.inner_text("#congestion-count")) == 2
    assert "peak-day-ahead" in page.inner_text("#congestion")
    assert "-3.500" in page.inner_text("#congestion")


def _state(mdb, market: str) -> str:
    """The market's state as `atp market list --json` says it."""
    listed = atp_json("market", "list", "--store", str(mdb), cwd=mdb.parent)
    (state,) = [m["state"] for m in listed if m["id"] == market]
    return state


def _row(page, market: str) -> str:
    rows = [r.inner_text() for r in page.query_selector_all("#markets tbody tr")]
    mine = [r for r in rows if r.split("\t")[0] == market]
    assert len(mine) == 1, rows
    return mine[0]


def test_an_operator_closes_and_reopens_a_market(site, stores, page):
    _, _, mdb = stores
    site.login(page)
    page.goto(site.url("/markets"))
    page.fill("#actions-day-ahead input[name=note]", "maintenance")
    page.click("#close-day-ahead")
    page.wait_for_selector("#action-done")
    assert "market day-ahead closed (was open)" in page.inner_text("#action-done")
    assert _state(mdb, "day-ahead") == "closed"
    assert "\tclosed\t" in _row(page, "day-ahead") and "maintenance" in _row(page, "day-ahead")
    assert _state(mdb, "congestion-n2") == "open"
    page.click("#open-day-ahead")
    page.wait_for_selector("#action-done")
    assert "market day-ahead open (was closed)" in page.inner_text("#action-done")
    assert _state(mdb, "day-ahead") == "open"
    assert "\topen\t" in _row(page, "day-ahead")
    # the notice is shown once: not again on the next visit
    page.goto(site.url("/markets"))
    page.wait_for_selector("#markets")
    assert page.query_selector("#action-done") is None
    # and the trail says who did it
    trail = (site.info["work"] / "web.log").read_text()
    assert "olga changed market day-ahead (state) from 127.0.0.1: market day-ahead closed" in trail
    assert "olga changed market day-ahead (state) from 127.0.0.1: market day-ahead open" in trail


def test_an_operator_changes_parameters_in_fmar_toml(site, stores, page):
    work, _, _ = stores
    toml = work / "fmar.toml"
    site.login(page)
    page.goto(site.url("/markets"))
    assert page.input_value("#p-day-ahead-min_order_kwh") == "0.0"
    page.click("#params-box-day-ahead summary")
    page.fill("#p-day-ahead-min_order_kwh", "2.5")
    page.fill("#p-day-ahead-sellers", "house-*, fman")
    page.click("#save-day-ahead")
    page.wait_for_selector("#action-done")
    assert "min_order_kwh = 2.5" in page.inner_text("#action-done")
    m = load_config(toml).markets["day-ahead"]
    assert (m.min_order_kwh, m.sellers) == (2.5, ["house-*", "fman"])
    assert "# one node, a gate every hour" in toml.read_text()
    assert page.input_value("#p-day-ahead-min_order_kwh") == "2.5"
    # another operator changes the file meanwhile: a save of this page leaves their change
    set_voll = ("market", "set", "day-ahead", "voll=5", "--config", str(toml))
    assert atp(*set_voll, cwd=work).returncode == 0
    page.click("#params-box-day-ahead summary")
    page.fill("#p-day-ahead-time_limit_s", "4")
    page.click("#save-day-ahead")
    page.wait_for_selector("#action-done")
    m = load_config(toml).markets["day-ahead"]
    assert (m.time_limit_s, m.voll, m.min_order_kwh) == (4.0, 5.0, 2.5)
    # a change the service would refuse is refused here, naming the key; the file stays
    before = toml.read_text()
    page.click("#params-box-day-ahead summary")
    page.fill("#p-day-ahead-horizon_s", "1000")
    page.click("#save-day-ahead")
    page.wait_for_selector("#action-refused")
    said = page.inner_text("#action-refused")
    assert "markets.day-ahead.horizon_s: 1000 s is not a multiple of 900 s" in said
    assert toml.read_text() == before


def test_a_viewer_sees_no_action_and_is_refused_a_forged_one(site, stores, page, watch):
    _, _, mdb = stores
    site.login(page, "vic")
    page.goto(site.url("/markets"))
    page.wait_for_selector("#markets")
    assert page.query_selector_all("form[action^='/markets/']") == []
    assert page.query_selector("#close-day-ahead") is None
    # the viewer's own session token, in a form made by hand: refused for the role
    watch.allow.add(403)
    csrf = page.get_attribute("form.logout input[name=csrf]", "value")
    page.evaluate(
        """([csrf]) => {
            const f = document.createElement("form");
            f.method = "post";
            f.action = "/markets/day-ahead/state";
            for (const [k, v] of [["csrf", csrf], ["state", "closed"]]) {
                const i = document.createElement("input");
                i.name = k; i.value = v; f.appendChild(i);
            }
            document.body.appendChild(f);
            f.submit();
        }""",
        [csrf],
    )
    page.wait_for_selector("#forbidden")
    assert "needs the operator role" in page.inner_text("#forbidden")
    assert _state(mdb, "day-ahead") == "open"


def test_an_action_without_the_sessions_token_is_refused(site, stores, page, watch):
    _, _, mdb = stores
    site.login(page)
    watch.allow.add(403)
    r = page.request.post(
        site.url("/markets/day-ahead/state"), form={"csrf": "forged", "state": "closed"}
    )
    assert r.status == 403
    assert _state(mdb, "day-ahead") == "open"


def test_without_a_market_store_the_page_says_how_to_give_one(stores, tmp_path, page):
    _, db, _ = stores
    with run_fman_web(tmp_path, db=db) as s:
        s.login(page)
        page.goto(s.url("/markets"))
        assert "--market-store" in page.inner_text("#markets-none")
