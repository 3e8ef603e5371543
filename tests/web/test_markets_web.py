"""The dashboard's markets page (F2.FMAR6) in a real headless Chromium, over a real FMAR
store: its markets, every gate with the depth of its book and its result, the same counts
as ``atp market list --json``; without a market store the page says how to give one."""

from __future__ import annotations

import json

import pytest

from cloud.fman.store import open_store
from cloud.fmar.store import GateRow, OrderRow, ResultRow, open_market_store
from tests.web.sites import T0, atp_json, run_fman_web


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
            s.close_gate(market, "g0", at=T0 + 1800)
            s.record_result(
                ResultRow(
                    market=market, gate="g0", status="optimal", welfare_eur=12.5,
                    payload="{}", cleared_at=T0 + 1900,
                )
            )  # fmt: skip
    finally:
        s.close()
    return work, db, mdb


@pytest.fixture(scope="module")
def site(stores):
    work, db, mdb = stores
    (work / "site").mkdir()
    with run_fman_web(work / "site", db=db, extra=("--market-store", str(mdb))) as s:
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


def test_without_a_market_store_the_page_says_how_to_give_one(stores, tmp_path, page):
    _, db, _ = stores
    with run_fman_web(tmp_path, db=db) as s:
        s.login(page)
        page.goto(s.url("/markets"))
        assert "--market-store" in page.inner_text("#markets-none")
