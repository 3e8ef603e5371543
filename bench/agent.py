"""Figures for the agent runtime (prints them; asserts nothing).

    .venv/bin/python bench/agent.py [--quick] [--agents 1000] [--speeds 60,180] [--no-fleet]

* ``foa --help``: wall time (target at most 0.3 s), against ``python -c pass``;
* one agent: ``foa run`` as the real daemon process with 10 simulated devices, answered by a
  small FMAN stand-in, through a simulated day: resident memory at the end of the day (target
  at most 40 MB on x86-64) and its peak, against a bare Python interpreter; CPU per day;
  with ``--web``, the same with its local page on, each page fetched every few seconds as a
  person looking at it would;
* a fleet of N agents (``atp sim fleet``, default 1000) against one Mosquitto, at each speed:
  CPU and memory per agent, messages per second, how late control steps start (the sign of a
  fleet that no longer keeps up), Mosquitto's CPU; against one paho client publishing QoS 1 as
  fast as it can on the same broker (the machine's ceiling for one process).

Each figure is the median of several runs (``--quick``: one). The machine may be shared with
other work, so the figures are noisy; the machine is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

import protocol  # noqa: E402
from cloud.broker import Mosquitto  # noqa: E402
from protocol import Ack, Schedule, topics  # noqa: E402

BIN = Path(sys.executable).parent
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DAY = 86_400
TEN_DEVICES = {
    "ev": {"model": "ev", "generator": "ev", "battery_kwh": 58.0, "max_power_kw": 11.0},
    "ev2": {"model": "ev", "generator": "ev", "battery_kwh": 40.0, "max_power_kw": 7.4},
    "heat_pump": {"model": "heat_pump", "generator": "heat_pump"},
    "boiler": {"model": "boiler", "generator": "boiler"},
    "freezer": {"model": "freezer", "generator": "freezer"},
    "battery": {"model": "battery", "generator": "battery"},
    "pv": {"model": "pv", "generator": "pv", "peak_kw": 6.0},
    "dishwasher": {"model": "wet_appliance", "generator": "wet_appliance"},
    "washer": {
        "model": "wet_appliance",
        "generator": "wet_appliance",
        "appliance": "washing_machine",
    },
    "grid": {"model": "grid_asset", "generator": "doms"},
}


def broker(tmp: Path) -> Mosquitto:
    return Mosquitto(workdir=tmp).start()


def median(values: list[float]) -> float:
    return statistics.median(values)


def proc_status(pid: int, key: str) -> float:
    """A ``/proc/<pid>/status`` size in MB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


# -- foa --help ---------------------------------------------------------------------------------


def bench_help(runs: int) -> None:
    def timed(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t

    foa = median([timed([str(BIN / "foa"), "--help"]) for _ in range(runs)])
    bare = median([timed([sys.executable, "-c", "pass"]) for _ in range(runs)])
    print("foa --help")
    print(f"  wall time           {foa * 1000:7.0f} ms   (target <= 300 ms)")
    print(f"  python -c pass      {bare * 1000:7.0f} ms   ratio {foa / bare:.1f}x")


# -- one agent, a simulated day -----------------------------------------------------------------


class FmanStandIn(threading.Thread):
    """Accepts every offer revision and assigns it its default schedule (always feasible);
    acknowledges every meter batch (the agent keeps what FMAN has not answered)."""

    def __init__(self, mq: Mosquitto, agent: str) -> None:
        super().__init__(daemon=True)
        self.done: set[tuple[str, int]] = set()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._offer
        self.client.connect(mq.host, mq.port)
        self.client.subscribe(topics.agent_topic(agent, "offer"), qos=1)
        self.client.subscribe(topics.agent_topic(agent, "meter"), qos=1)
        self.agent = agent

    def _offer(self, client: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        if m.topic.endswith("/meter"):
            msg = protocol.decode(m.payload, expect="meter")
            ack = Ack(ref_kind="meter", ref_id=msg.id, revision=msg.body.seq)
            payload = protocol.encode(ack, ts=msg.ts)
            client.publish(topics.agent_topic(self.agent, "ack"), payload, qos=1)
            return
        o = protocol.decode(m.payload, expect="offer").body
        if (o.id, o.revision) in self.done:
            return
        self.done.add((o.id, o.revision))
        ack = Ack(ref_kind="offer", ref_id=o.id, revision=o.revision)
        d = o.default
        sched = Schedule(
            offer_id=o.id,
            version=o.revision + 1,
            start=d.start,
            profile=d.profile,
            energy_kwh=d.energy_kwh,
        )
        for channel, body in (("ack", ack), ("schedule", sched)):
            payload = protocol.encode(body, ts=o.created_at)
            client.publish(topics.agent_topic(self.agent, channel), payload, qos=1)

    def run(self) -> None:
        self.client.loop_forever()

    def stop(self) -> None:
        self.client.disconnect()


def one_day(
    mq: Mosquitto, tmp: Path, speed: float, timeout: float, *, web: bool = False
) -> dict[str, float] | None:
    agent = f"bench-{int(time.time() * 1000) % 10**8}"
    lines = [
        "[agent]",
        f'id = "{agent}"',
        'store = "foa.db"',
        "[broker]",
        f'url = "{mq.url}"',
        "[clock]",
        f"speed = {speed}",
        f"start = {T0}",
        f"anchor = {time.time() + 1.0}",
    ]
    if web:
        lines += ["[web]", "enabled = true", "port = 0"]
    for dev, table in TEN_DEVICES.items():
        lines += [f"[devices.{dev}]", 'driver = "sim"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    (tmp / "foa.toml").write_text("\n".join(lines) + "\n")
    fman = FmanStandIn(mq, agent)
    fman.start()
    proc = subprocess.Popen(
        [str(BIN / "foa"), "run", "--config", str(tmp / "foa.toml"), "--log-level", "error"],
        cwd=tmp,
    )
    end = time.time() + 1.0 + DAY / speed
    pages = 0
    next_look = time.time() + 2.0
    try:
        while time.time() < end:
            if proc.poll() is not None or time.time() > end + timeout:
                return None
            if web and time.time() >= next_look:
                pages += look_at_pages(tmp / "foa.db")
                next_look = time.time() + 3.0
            time.sleep(0.2)
        if heartbeat(tmp / "foa.db") < T0 + DAY - 3600:
            return None  # alive but stuck: its loop stopped beating
        result = {
            "rss_mb": proc_status(proc.pid, "VmRSS"),
            "peak_mb": proc_status(proc.pid, "VmHWM"),
            "cpu_s": proc_cpu_s(proc.pid),
            "offers": len(fman.done),
            "pages": pages,
        }
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        return result
    finally:
        if proc.poll() is None:
            proc.kill()
        fman.stop()


def look_at_pages(db: Path) -> int:
    """Fetch each page of the agent's local page once; how many answered 200."""
    import sqlite3
    import urllib.request

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = conn.execute("SELECT value FROM meta WHERE key = 'web_url'").fetchone()
        conn.close()
    except sqlite3.Error:
        return 0
    if not row or not row[0]:
        return 0
    ok = 0
    for path in ("", "offers", "config", "static/app.css", "static/sort.js"):
        with urllib.request.urlopen(row[0] + path, timeout=10) as r:
            r.read()
            ok += r.status == 200
    return ok


def heartbeat(db: Path) -> float:
    """The agent's last heartbeat (its clock), read as ``foa status`` reads it."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = conn.execute("SELECT value FROM meta WHERE key = 'heartbeat'").fetchone()
        conn.close()
    except sqlite3.Error:
        return 0.0
    return float(row[0]) if row else 0.0


def bare_python_rss() -> float:
    out = subprocess.run(
        [sys.executable, "-c", "print(open('/proc/self/status').read())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_one_agent(runs: int, speed: float, *, web: bool = False) -> None:
    page = ", its local page on and looked at" if web else ""
    print(f"one agent, 10 simulated devices{page}, one simulated day at {speed:g}x (foa run)")
    results = []
    with tempfile.TemporaryDirectory() as d:
        mq = broker(Path(d) / "broker")
        try:
            for i in range(runs):
                run_dir = Path(d) / f"run{i}"
                run_dir.mkdir()
                r = one_day(mq, run_dir, speed, timeout=60, web=web)
                if r is None:
                    print(f"  run {i + 1}: the agent did not finish its day (exited or hung)")
                    continue
                results.append(r)
        finally:
            mq.close()
    if not results:
        return
    bare = bare_python_rss()
    rss = median([r["rss_mb"] for r in results])
    print(f"  resident memory     {rss:7.1f} MB   (target <= 40 MB; bare python {bare:.1f} MB)")
    print(f"  peak resident       {median([r['peak_mb'] for r in results]):7.1f} MB")
    print(f"  CPU for the day     {median([r['cpu_s'] for r in results]):7.2f} s")
    print(f"  offer revisions     {median([r['offers'] for r in results]):7.0f}")
    if web:
        print(f"  page requests       {median([r['pages'] for r in results]):7.0f} (all 200)")


# -- a fleet ------------------------------------------------------------------------------------


def paho_ceiling(mq: Mosquitto, seconds: float = 3.0) -> float:
    """Messages per second one paho client publishes at QoS 1 (200 bytes) on this broker."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(100)
    c.connect(mq.host, mq.port)
    c.loop_start()
    payload = b"x" * 200
    sent = 0
    t0 = time.perf_counter()
    last = None
    while time.perf_counter() - t0 < seconds:
        for _ in range(500):
            last = c.publish("bench/ceiling", payload, qos=1)
            sent += 1
        while len(c._out_messages) > 1000:  # keep within paho's message id space
            time.sleep(0.001)
    if last is not None:
        last.wait_for_publish(10)
    rate = sent / (time.perf_counter() - t0)
    c.loop_stop()
    c.disconnect()
    return rate


def bench_fleet(agents: int, speeds: list[float], wall_s: float) -> None:
    print(f"fleet of {agents} agents (atp sim fleet) against one Mosquitto, {wall_s:g} s per speed")
    with tempfile.TemporaryDirectory() as d:
        mq = broker(Path(d) / "ceiling")
        try:
            ceiling = paho_ceiling(mq)
        finally:
            mq.close()
        print(f"  one paho client, QoS 1, 200 B: {ceiling:,.0f} msg/s (this machine's ceiling)")
        header = (
            f"  {'speed':>6} {'msg/s':>8} {'CPU ms/agent/s':>15} {'MB/agent':>9} "
            f"{'lag mean':>9} {'lag max':>8} {'broker CPU':>11} {'offers':>7} {'readings':>9}"
        )
        print(header)
        for speed in speeds:
            work = Path(d) / f"fleet-{speed:g}"
            mq = broker(work / "broker")
            try:
                broker_cpu0 = proc_cpu_s(mq._proc.pid)  # type: ignore[union-attr]
                t0 = time.perf_counter()
                out = subprocess.run(
                    [str(BIN / "atp"), "sim", "fleet", "--agents", str(agents),
                     "--broker", mq.url, "--speed", str(speed), "--duration",
                     str(wall_s * speed), "--sim-start", str(T0), "--dir", str(work / "stores"),
                     "--json", "--quiet"],
                    capture_output=True, text=True, timeout=wall_s * 4 + 300,
                )  # fmt: skip
                elapsed = time.perf_counter() - t0
                broker_cpu = proc_cpu_s(mq._proc.pid) - broker_cpu0  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                print(f"  {speed:>6g} did not finish (hung or far behind)")
                continue
            finally:
                mq.close()
            if out.returncode != 0 or not out.stdout.strip():
                print(f"  {speed:>6g} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            s = json.loads(out.stdout)
            if s["started"] < agents:
                print(
                    f"  {speed:>6g} overloaded: only {s['started']} of {agents} agents started "
                    f"before the simulated time ran out ({s['cpu_s']:.0f} s CPU in "
                    f"{s['wall_s']:.0f} s, {s['messages_per_s']:.0f} msg/s)"
                )
                continue
            print(
                f"  {speed:>6g} {s['messages_per_s']:>8.0f} {s['cpu_ms_per_agent_s']:>15.2f} "
                f"{s['rss_mb_per_agent']:>9.3f} {s['lag_mean_s'] / speed * 1000:>7.0f}ms "
                f"{s['lag_max_s'] / speed:>7.1f}s {100 * broker_cpu / elapsed:>10.0f}% "
                f"{s['offers'] + s['updates']:>7} {s['readings']:>9}"
            )
            print(
                f"         {s['started']} agents, {s['devices']} devices, "
                f"peak {s['connected_peak']}"
                f" connected, {s['rss_mb']:.0f} MB, {s['cpu_s']:.0f} s CPU in {s['wall_s']:.0f} s,"
                f" outbox left {s['outbox']}, failed {s['failed']}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run of each, a short fleet")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--speeds", default="60,180,270", help="fleet speeds, comma-separated")
    ap.add_argument("--fleet-seconds", type=float, default=None, help="wall seconds per speed")
    ap.add_argument("--day-speed", type=float, default=3600.0)
    ap.add_argument("--no-fleet", action="store_true")
    ap.add_argument("--web", action="store_true", help="one agent with its local page on, too")
    args = ap.parse_args()
    runs = 1 if args.quick else 3
    print(f"machine: {machine()}")
    bench_help(5 if args.quick else 15)
    bench_one_agent(runs, args.day_speed)
    if args.web:
        bench_one_agent(runs, args.day_speed, web=True)
    if not args.no_fleet:
        speeds = [float(s) for s in args.speeds.split(",") if s]
        bench_fleet(args.agents, speeds, args.fleet_seconds or (30.0 if args.quick else 90.0))


if __name__ == "__main__":
    main()
