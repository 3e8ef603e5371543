"""The HTTP gateway ``atp api serve`` (a real uvicorn server) over a real FMAN store.

Each REST path answers with the agent's own data, the same bodies as the MQTT requests; an
agent's token never reads or writes another agent's data by any path or parameter, an
operator's names the agent; bad requests get a reason naming the field; writes go through
the workers' ingest (acknowledged, stored, a repeat answered as the first time); tokens are
stored hashed in a 0600 file, revoked at once, never logged; a flood from one token is
rate-limited while another token is served; the event stream follows the agent's offers.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
from urllib.parse import urlsplit

import pytest
from msgspec.structs import replace

import protocol
from cloud.fman.config import dump_toml
from protocol import samples

from .gateway import NOW, atp, issue, seed, serve

V1 = "/api/v1"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    db = work / "fman.db"
    seed(db)
    (work / "fman.toml").write_text(
        dump_toml(
            {
                "worker": {"broker": "mqtt://127.0.0.1:1", "store": str(db)},
                "clock": {"sim_start": str(NOW), "speed": 1.0},
            }
        )
    )
    tokens = work / "api-tokens"
    issued = {
        "h1": issue(tokens, "house-1", cwd=work),
        "h2": issue(tokens, "house-2", cwd=work),
        "h3": issue(tokens, "house-3", cwd=work),
        "op": issue(tokens, "dso-portal", "operator", cwd=work),
    }
    return work, db, tokens, issued


@pytest.fixture(scope="module")
def gw(work):
    path, _, tokens, issued = work
    with serve(
        path, "--config", "fman.toml", "--tokens", str(tokens), "--rate", "20", "--burst", "100"
    ) as g:
        g.tokens.update(issued)
        yield g
    # the server never logged a token
    log = g.log.read_text()
    assert not any(t in log for t in issued.values())


def test_each_path_answers_with_the_agents_own_data(gw):
    assert [c["id"] for c in gw.ok(f"{V1}/contract", "h1")] == ["c-house-1"]
    assert [o["id"] for o in gw.ok(f"{V1}/flexoffer", "h1")] == ["h1-o1"]
    ranged = gw.ok(f"{V1}/flexoffer/{NOW}/{NOW + 86_400}", "h1")
    assert sorted(o["id"] for o in ranged) == ["h1-o1", "h1-o2"]
    got = gw.ok(f"{V1}/flexoffer/h1-o1", "h1")
    assert got["offer"]["issuer"] == "house-1" and got["schedule"]["version"] == 1
    sched = gw.ok(f"{V1}/timeseries/schedule/{NOW}/{NOW + 86_400}", "h1")
    expect = {
        str(got["schedule"]["start"] + i * 900): round(e, 6)
        for i, e in enumerate(got["schedule"]["energy_kwh"])
    }
    assert sched["values"] == expect and expect
    base = gw.ok(f"{V1}/timeseries/baseline/{NOW}/{NOW + 86_400}", "h1")
    assert base["values"] and all(int(t) >= NOW for t in base["values"])
    bill = gw.ok(f"{V1}/bill?period=2026-01", "h1")
    assert bill["party"] == "house-1" and bill["total_cents"] == 0
    kpis = gw.ok(f"{V1}/kpi?period=2026-01", "h1")
    assert set(kpis) >= {"2.1.1.1.a", "2.1.1.2.b"}


def test_a_measurement_goes_through_the_ingest_and_into_the_series(gw):
    batch = samples.meter_batch(agent="house-1", now=NOW - 3600, readings=2)
    params = {"batch": protocol.to_builtins(batch), "msg_id": "http-m1"}
    r = gw.call("POST", f"{V1}/flexoffer/measurement", token="h1", body=params)
    assert r.status == 200, r.body
    ack = r.body["body"]
    assert ack["ref_id"] == "http-m1" and not ack.get("quarantined"), ack
    again = gw.call("POST", f"{V1}/flexoffer/measurement", token="h1", body=params)
    assert again.body == r.body  # the ingest log answers a repeat as the first time
    series = gw.ok(f"{V1}/timeseries/measurement/{NOW - 86_400}/{NOW}", "h1")
    assert len(series["values"]) == 2, series
    # a batch of another agent, from house-1's token
    other = {"batch": protocol.to_builtins(replace(batch, agent="house-2")), "msg_id": "x"}
    r = gw.call("POST", f"{V1}/flexoffer/measurement", token="h1", body=other)
    assert r.status == 400 and "params.batch.agent" in r.body["reason"]


def test_house_1_cannot_read_or_change_house_2s_anything(gw):
    # house-2's offer by id: answered exactly as one that does not exist
    r = gw.get(f"{V1}/flexoffer/h2-o1", "h1")
    missing = gw.get(f"{V1}/flexoffer/no-such-offer", "h1")
    assert r.status == missing.status == 404
    assert r.body["reason"].replace("h2-o1", "X") == missing.body["reason"].replace(
        "no-such-offer", "X"
    )
    # naming house-2 on any path is refused
    paths = [
        "/contract", "/bill?period=2026-01", "/kpi?period=2026-01", "/flexoffer",
        f"/flexoffer/{NOW}/{NOW + 86_400}", "/flexoffer/h2-o1", "/flexoffer/stream",
        *(f"/timeseries/{k}/{NOW - 86_400}/{NOW + 86_400}"
          for k in ("measurement", "baseline", "schedule")),
    ]  # fmt: skip
    assert paths
    for p in paths:
        sep = "&" if "?" in p else "?"
        r = gw.get(f"{V1}{p}{sep}agent=house-2", "h1")
        assert r.status == 403, (p, r.status, r.body)
    # and nothing of house-2 is in what house-1 reads
    seen = json.dumps(
        [gw.ok(f"{V1}{p}", "h1") for p in paths if "stream" not in p and "h2-o1" not in p]
    )
    assert "house-2" not in seen and "h2-o1" not in seen and "c-house-1" in seen
    # an offer of house-2's, sent or withdrawn with house-1's token, is refused by the ingest
    offer = replace(samples.two_slot_offer(agent="house-2", now=NOW), id="h2-forged")
    r = gw.call("PUT", f"{V1}/flexoffer/h2-forged", token="h1", body=protocol.to_builtins(offer))
    assert r.status == 422, r.body
    r = gw.call("DELETE", f"{V1}/flexoffer/h2-o1", token="h1")
    assert r.status == 422, r.body
    assert gw.ok(f"{V1}/flexoffer/h2-o1", "h2")["state"] == "accepted"
    assert gw.get(f"{V1}/flexoffer/h2-forged", "h2").status == 404


def test_an_operator_token_names_the_agent(gw):
    assert [c["id"] for c in gw.ok(f"{V1}/contract?agent=house-2", "op")] == ["c-house-2"]
    assert [o["id"] for o in gw.ok(f"{V1}/flexoffer?agent=house-1", "op")] == ["h1-o1"]
    r = gw.get(f"{V1}/flexoffer", "op")
    assert r.status == 400 and "agent" in r.body["reason"]


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        (f"/flexoffer/{NOW}/{NOW + 400 * 86_400}", 400, "params.to: the range is longer"),
        (f"/flexoffer/{NOW + 10}/{NOW}", 400, "params.to: must be after"),
        ("/flexoffer/yesterday/today", 400, "params.from"),
        ("/bill?period=january", 400, "params.period"),
        ("/bill", 400, "field `period`"),
        ("/contract?verbose=1", 400, "verbose: unknown query parameter"),
        ("/nothing-here", 404, None),
    ],
)
def test_bad_requests_get_a_reason(gw, path, status, reason):
    r = gw.get(f"{V1}{path}", "h1")
    assert r.status == status, r.body
    if reason is not None:
        assert r.body["status"] == "error" and reason in r.body["reason"], r.body


def test_an_offer_put_over_http_is_acked_updated_and_withdrawn_like_one_over_mqtt(gw, work):
    offer = replace(samples.two_slot_offer(agent="house-1", now=NOW), id="h1-http")
    body = protocol.to_builtins(offer)
    r = gw.call("POST", f"{V1}/flexoffer", token="h1", body=body, headers={"Idempotency-Key": "k1"})
    assert r.status == 200, r.body
    assert r.body["body"]["ref_id"] == "h1-http" and r.body["body"]["fman_id"]
    again = gw.call(
        "POST", f"{V1}/flexoffer", token="h1", body=body, headers={"Idempotency-Key": "k1"}
    )
    assert again.status == 200 and again.body == r.body
    assert gw.ok(f"{V1}/flexoffer/h1-http", "h1")["state"] == "accepted"
    updated = protocol.to_builtins(replace(offer, revision=1))
    r = gw.call("PUT", f"{V1}/flexoffer/h1-http", token="h1", body=updated)
    assert r.status == 200 and r.body["body"]["revision"] == 1, r.body
    assert gw.ok(f"{V1}/flexoffer/h1-http", "h1")["offer"]["revision"] == 1
    # an older revision, a body that is no offer, an id that is not the path's
    stale = gw.call("PUT", f"{V1}/flexoffer/h1-http", token="h1", body=body)
    assert stale.status == 422 and "superseded" in stale.body["reason"], stale.body
    bad = gw.call("POST", f"{V1}/flexoffer", token="h1", body={**body, "resolution_s": "x"})
    assert bad.status == 400 and "resolution_s" in bad.body["reason"], bad.body
    other = gw.call("PUT", f"{V1}/flexoffer/another-id", token="h1", body=updated)
    assert other.status == 400 and "path" in other.body["reason"]
    # one row in the store for the offer, revision 1, and its ingest log has both messages
    r = gw.call("DELETE", f"{V1}/flexoffer/h1-http?reason=plans+changed", token="h1")
    assert r.status == 200, r.body
    got = gw.ok(f"{V1}/flexoffer/h1-http", "h1")
    assert got["state"] == "withdrawn", got


def test_tokens_are_hashed_0600_and_a_revoked_one_stops_working_at_once(gw, work):
    path, _, tokens, issued = work
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    text = tokens.read_text()
    assert not any(t.split("_", 2)[2] in text for t in issued.values())
    assert gw.get(f"{V1}/contract", "").status == 401
    assert gw.get(f"{V1}/contract", "atp_000000000000_" + "x" * 43).status == 401
    assert gw.call("GET", f"{V1}/contract").status == 401
    fresh = issue(tokens, "house-1", cwd=path)
    assert gw.get(f"{V1}/contract", fresh).status == 200
    listed = atp("api", "token", "list", "--tokens", str(tokens), "--json", cwd=path)
    listed = json.loads(listed.stdout)
    tid = fresh.split("_")[1]
    assert tid in {t["id"] for t in listed} and "digest" not in json.dumps(listed)
    out = atp("api", "token", "revoke", tid, "--tokens", str(tokens), cwd=path)
    assert out.returncode == 0, out.stderr
    assert gw.get(f"{V1}/contract", fresh).status == 401
    assert gw.get(f"{V1}/contract", "h1").status == 200
    secret = path / "house-9.token"
    out = atp(
        "api", "token", "issue", "house-9", "--tokens", str(tokens), "--out", str(secret), cwd=path
    )
    assert out.returncode == 0 and "atp_" not in out.stdout + out.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert gw.get(f"{V1}/contract", secret.read_text().strip()).status == 200


def test_a_flood_from_one_token_is_rate_limited_and_another_is_served(gw):
    codes = [gw.get(f"{V1}/contract", "h3").status for _ in range(150)]
    assert codes.count(429) > 0 and codes.count(200) >= 30, codes
    r = gw.get(f"{V1}/contract", "h3")
    if r.status == 429:
        assert int(r.headers["retry-after"]) >= 1 and "rate limited" in r.body["reason"]
    assert gw.get(f"{V1}/contract", "h2").status == 200


def _events(gw, token: str):
    """The event stream as (event, data) pairs, read as they come."""
    u = urlsplit(gw.base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.request(
        "GET", f"{V1}/flexoffer/stream", headers={"Authorization": f"Bearer {gw.tokens[token]}"}
    )
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")

    def read():
        event = None
        while True:
            line = r.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                yield event, json.loads(line[6:])
                event = None

    return conn, read()


def test_the_stream_follows_the_agents_offers(gw):
    conn, events = _events(gw, "h2")
    try:
        first = next(events)
        assert first == ("offer", {**first[1], "id": "h2-o1", "state": "accepted"})
        offer = replace(samples.two_slot_offer(agent="house-2", now=NOW), id="h2-live")
        r = gw.call("POST", f"{V1}/flexoffer", token="h2", body=protocol.to_builtins(offer))
        assert r.status == 200, r.body
        event, data = next(events)
        assert event == "offer" and data["id"] == "h2-live" and data["state"] == "accepted"
        gw.call("DELETE", f"{V1}/flexoffer/h2-live", token="h2")
        event, data = next(events)
        assert data["id"] == "h2-live" and data["state"] == "withdrawn", data
    finally:
        conn.close()


def test_openapi_document_lists_every_route(gw):
    from cloud.api import ROUTES

    r = gw.call("GET", f"{V1}/openapi.json")
    assert r.status == 200
    doc = r.body
    assert doc["openapi"].startswith("3.1.") and doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert ROUTES
    for route in ROUTES:
        op = doc["paths"][route.full_path][route.http.lower()]
        assert op["operationId"] == route.name and "200" in op["responses"]
        names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert names == set(route.path_params)
    ops = [(p, m) for p, ms in doc["paths"].items() for m in ms]
    assert len(ops) == len(ROUTES)
    # every reference resolves
    schemas = doc["components"]["schemas"]
    refs = [s for s in _walk(doc) if isinstance(s, dict) and "$ref" in s]
    assert refs
    for s in refs:
        assert s["$ref"].removeprefix("#/components/schemas/") in schemas, s


def _walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def test_the_server_refuses_plain_http_beyond_loopback_and_a_readable_tokens_file(work):
    path, _, tokens, _ = work
    out = atp("api", "serve", "--config", "fman.toml", "--host", "0.0.0.0", cwd=path)
    assert out.returncode != 0 and "TLS" in out.stderr and "Traceback" not in out.stderr
    loose = path / "loose-tokens"
    loose.write_text(tokens.read_text())
    os.chmod(loose, 0o644)
    out = atp("api", "serve", "--config", "fman.toml", "--tokens", str(loose), cwd=path)
    assert out.returncode != 0 and "chmod 600" in out.stderr
