"""100,000+ random and mutated payloads: the decoder raises its own error type and nothing else."""

from __future__ import annotations

import random

import msgpack

import protocol
from protocol.samples import NOW, heat_pump_offer, meter_batch, two_slot_offer

N_PAYLOADS = 120_000


def _mutations(rng: random.Random, seeds: list[bytes]):
    """Random bytes, bit flips, truncations, splices, and structurally valid but hostile maps."""
    hostile_values = [
        None,
        True,
        -1,
        2**64 - 1,
        -(2**63),
        1e308,
        float("nan"),
        "",
        "x" * 300,
        b"\x00\xff",
        [],
        {},
        [[[]]],
    ]
    plain = [msgpack.unpackb(s, raw=False) for s in seeds]
    while True:
        choice = rng.random()
        seed = rng.choice(seeds)
        if choice < 0.15:
            yield rng.randbytes(rng.randint(0, 64))
        elif choice < 0.45:
            data = bytearray(seed)
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] = rng.randrange(256)
            yield bytes(data)
        elif choice < 0.6:
            yield seed[: rng.randrange(len(seed))]
        elif choice < 0.7:
            other = rng.choice(seeds)
            yield seed[: rng.randrange(len(seed))] + other[rng.randrange(len(other)) :]
        else:
            msg = msgpack.unpackb(msgpack.packb(rng.choice(plain)), raw=False)
            _poke(rng, msg, hostile_values)
            yield msgpack.packb(msg)


def _poke(rng: random.Random, node, values, depth: int = 0) -> None:
    """Replace one value somewhere inside a decoded message with a hostile one."""
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        if (depth > 1 and rng.random() < 0.4) or not isinstance(node[key], dict | list):
            node[key] = rng.choice(values)
        else:
            _poke(rng, node[key], values, depth + 1)
    elif isinstance(node, list) and node:
        i = rng.randrange(len(node))
        if rng.random() < 0.4 or not isinstance(node[i], dict | list):
            node[i] = rng.choice(values)
        else:
            _poke(rng, node[i], values, depth + 1)


def test_decoder_raises_only_its_own_error():
    rng = random.Random(20261125)
    seeds = [
        protocol.encode(body, ts=NOW)
        for body in (heat_pump_offer(slots=8), two_slot_offer(), meter_batch(readings=4))
    ]
    outcomes = {"ok": 0, "refused": 0}
    gen = _mutations(rng, seeds)
    for _ in range(N_PAYLOADS):
        data = next(gen)
        try:
            protocol.decode(data)
        except protocol.DecodeError as exc:
            assert exc.errors, "a DecodeError must say what is wrong"
            outcomes["refused"] += 1
        else:
            outcomes["ok"] += 1
    assert outcomes["refused"] > N_PAYLOADS // 2
    assert outcomes["ok"] + outcomes["refused"] == N_PAYLOADS
