"""What the production broker's security costs: TLS, passwords and the ACL, against plain MQTT.

Three figures, each the median of several runs, with the development broker (loopback, plain
text, anonymous, no ACL) as the baseline:

1. QoS 1 throughput, one paho-mqtt publisher to one subscriber (200-byte payloads, the
   agent's offer topic): development config vs ``mosquitto/prod.conf`` (TLS 1.2+, password,
   the dynamic-security plugin's roles checked on every publish and delivery); the ratio is
   what security costs per message.
2. Connections per second (TLS handshake + CONNECT + password check + CONNACK, one at a
   time), as after an outage when the whole fleet reconnects: with the hashes the
   dynamic-security plugin keeps (PBKDF2-SHA512, 101 iterations, its default) and with
   10,000 iterations, to show why 101 is kept for random 256-bit passwords.
3. The same handshake count for plain-text connections on the development broker.

    python bench/broker_security.py [--runs 5] [--messages 5000] [--connects 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.broker import CONFIG_DIR, Mosquitto
from cloud.provision import Site, _dynsec, add_agent, add_service, init_site

PAYLOAD = b"x" * 200


def _client(broker: Mosquitto, cid: str, creds: tuple[str, str] | None, ca: Path | None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    if ca is not None:
        c.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if creds is not None:
        c.username_pw_set(*creds)
    return c


def throughput(broker, agent, fman, ca, n: int) -> float:
    """QoS 1 messages per second from ``agent`` to ``fman`` (``None`` creds: anonymous)."""
    done = threading.Event()
    got = [0]
    ready: queue.Queue[bool] = queue.Queue()

    def on_message(_c, _u, _m) -> None:
        got[0] += 1
        if got[0] == n:
            done.set()

    sub = _client(broker, "bench-sub", fman, ca)
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: ready.put(True)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    sub.subscribe("atp/v1/a/+/offer", qos=1)
    ready.get(timeout=10)
    pub = _client(broker, "bench-agent", agent, ca)
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    time.sleep(0.2)
    topic = f"atp/v1/a/{agent[0] if agent else 'bench-agent'}/offer"
    t = time.perf_counter()
    infos = []
    for _ in range(n):
        infos.append(pub.publish(topic, PAYLOAD, qos=1))
        if len(infos) >= 900:  # bound what is in flight (paho's ids wrap at 65,535)
            infos.pop(0).wait_for_publish(10)
    done.wait(60)
    rate = got[0] / (time.perf_counter() - t)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return rate


def connects(broker, creds, ca, n: int) -> float:
    """Complete connections (handshake to CONNACK) per second, one after the other."""
    t = time.perf_counter()
    for i in range(n):
        ok = threading.Event()
        c = _client(broker, f"bench-conn-{i}", creds, ca)
        c.on_connect = lambda *_a, ev=ok: ev.set()
        c.connect(broker.host, broker.port)
        deadline = time.monotonic() + 10
        while not ok.is_set():  # drive the client here: no thread to start and join
            c.loop(timeout=0.01)
            if time.monotonic() > deadline:
                raise RuntimeError("no CONNACK")
        c.disconnect()
    return n / (time.perf_counter() - t)


def median(fn, runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Site(root=Path(tmp) / "site")
        init_site(site, hostnames=["127.0.0.1"])
        add_agent(site, "bench-agent", offline=True)
        add_service(site, "fman", offline=True)
        agent = ("bench-agent", (site.device_dir("bench-agent") / "password").read_text().strip())
        fman = (
            "fman-1",
            (site.service_dir("fman-1") / "credentials").read_text().strip().partition(":")[2],
        )
        ca = site.ca_cert
        out: dict[str, float] = {}
        with Mosquitto(workdir=Path(tmp) / "dev") as dev:
            out["qos1_msg_s_dev"] = median(
                lambda: throughput(dev, None, None, None, a.messages), a.runs
            )
            out["connects_s_dev_plain"] = median(
                lambda: connects(dev, None, None, a.connects), a.runs
            )
        prod = Mosquitto(
            config=CONFIG_DIR / "prod.conf", files_dir=site.broker_dir, workdir=Path(tmp) / "prod"
        )
        with prod:
            out["qos1_msg_s_prod"] = median(
                lambda: throughput(prod, agent, fman, ca, a.messages), a.runs
            )
            out["connects_s_prod_pbkdf2_101"] = median(
                lambda: connects(prod, agent, ca, a.connects), a.runs
            )
        # The plugin reads its file at start only: re-hash the agent's password with 10,000
        # iterations there, and start the broker again.
        config = json.loads(site.dynsec.read_text())
        entry = next(c for c in config["clients"] if c["username"] == "bench-agent")
        entry.update(_dynsec.hash_entry(agent[1], iterations=10_000))
        site.dynsec.write_text(json.dumps(config))
        with prod:
            out["connects_s_prod_pbkdf2_10000"] = median(
                lambda: connects(prod, agent, ca, a.connects), a.runs
            )
    out["ratio_qos1_prod_vs_dev"] = out["qos1_msg_s_prod"] / out["qos1_msg_s_dev"]
    out["ratio_connects_101_vs_10000"] = (
        out["connects_s_prod_pbkdf2_101"] / out["connects_s_prod_pbkdf2_10000"]
    )
    if a.json:
        print(json.dumps(out))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"QoS 1, 200 B, paho -> paho (median of {a.runs} runs of {a.messages}):")
    print(f"  development (plain, anonymous): {out['qos1_msg_s_dev']:9.0f} msg/s")
    print(
        f"  production (TLS, password, roles): {out['qos1_msg_s_prod']:6.0f} msg/s"
        f"  ({out['ratio_qos1_prod_vs_dev']:.2f} of the baseline)"
    )
    print(f"connections to CONNACK, one at a time (median of {a.runs} runs of {a.connects}):")
    print(f"  development, plain text:             {out['connects_s_dev_plain']:7.0f} /s")
    print(f"  production, TLS + PBKDF2 101 iter:   {out['connects_s_prod_pbkdf2_101']:7.0f} /s")
    print(
        f"  production, TLS + PBKDF2 10000 iter: {out['connects_s_prod_pbkdf2_10000']:7.0f} /s"
        f"  (101 iterations: {out['ratio_connects_101_vs_10000']:.1f}x faster)"
    )


if __name__ == "__main__":
    main()
