"""Run the HTTP gateway (``atp api serve``, a real uvicorn server on a free port) over a real
FMAN store, and call it as a third party does: plain HTTP with a bearer token."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloud.fman import settlement
from cloud.fman.store import AgentStatus, open_store
from cloud.settle import contract_from_dict
from protocol import samples

from ..fman.test_store import new_schedule, offer_record

ATP = str(Path(sys.executable).with_name("atp"))
NOW = samples.NOW
ROOT = Path(__file__).resolve().parents[2]


def atp(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ATP, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def contract(party: str):
    doc = json.loads((ROOT / "examples" / "contracts" / "direct.json").read_text())
    # the devices the houses announce: the contract's device list binds FMAN's ingest
    doc.update(id=f"c-{party}", party={"id": party, "kind": "prosumer"}, devices=["plug", "hp"])
    doc["valid_from"] = "2025-01-01T00:00:00Z"
    return contract_from_dict(doc, source=party)


def seed(db: Path) -> None:
    """Two houses' offers (house-1: one accepted and scheduled, one rejected; house-2: one),
    their contracts, and their announced devices."""
    with open_store(str(db)) as s:
        s.put_offers(
            [
                offer_record("h1-o1", "house-1"),
                offer_record("h1-o2", "house-1", state="rejected"),
                offer_record("h2-o1", "house-2"),
            ]
        )
        s.add_schedules([new_schedule("h1-o1", "house-1", start=NOW + 1800)], now=NOW)
        for party in ("house-1", "house-2"):
            settlement.add_contract(s, contract(party), now=NOW)
        s.put_statuses(
            [
                AgentStatus(
                    agent=a, state="online", since=NOW, status_ts=NOW, seen_at=NOW,
                    version="test", devices=["plug", "hp"],
                )
                for a in ("house-1", "house-2", "house-3")
            ]
        )  # fmt: skip


def issue(tokens: Path, party: str, role: str = "agent", *, cwd: Path) -> str:
    """A token from ``atp api token issue`` (as an operator issues one)."""
    out = atp("api", "token", "issue", party, "--role", role, "--tokens", str(tokens), cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Gateway:
    base: str
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        u = urlsplit(self.base)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
            kind = r.getheader("content-type", "")
            parsed = json.loads(raw) if kind.startswith("application/json") else raw
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, parsed)
        finally:
            conn.close()

    def get(self, path: str, token: str) -> Reply:
        return self.call("GET", path, token=token)

    def ok(self, path: str, token: str) -> Any:
        r = self.get(path, token)
        assert r.status == 200, (path, r.status, r.body)
        assert r.body["status"] == "ok"
        return r.body["body"]


@contextmanager
def serve(work: Path, *args: str) -> Iterator[Gateway]:
    """``atp api serve ARGS --port 0`` until the block ends (SIGTERM, then a clean exit)."""
    log = work / "api.log"
    err = log.open("w+")
    proc = subprocess.Popen(
        [ATP, "api", "serve", "--port", "0", *args],
        cwd=work, stdout=subprocess.PIPE, stderr=err, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("atp api: http"):
            err.seek(0)
            raise RuntimeError(f"atp api serve did not start: {line}{err.read()}")
        url = line.split()[2]
        yield Gateway(base=url.removesuffix("/api/v1"), log=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err.close()
        assert rc in (0, -signal.SIGTERM), (rc, log.read_text())
