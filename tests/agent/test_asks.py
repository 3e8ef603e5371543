"""Direct trading's prices, from ``foa.toml`` to the wire and back through FMAR's parser.

A user prices a device's flexibility with asks (EUR per kWh of up and of down deviation) or
a comfort priority. The offer carries them in its ``prices`` as docs/market.md says an
offer's prices map onto asks; FMAR's own parser reading the offer as a sell order without
asks of its own must get back what the user asked.
"""

from __future__ import annotations

from pathlib import Path

import protocol
from agent.clock import RealClock
from agent.drivers.base import Measurement
from agent.generators._common import PRIORITY_ASKS
from agent.generators.base import OfferContext
from agent.plugins import build_devices, check_config_file
from cloud.fmar import book_from_builtins, order_asks

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

HEAD = """
[agent]
id = "house-1"
grid_node = "feeder-1"

[broker]
url = "mqtt://127.0.0.1:1883"
"""


def _config(tmp_path: Path, devices: str) -> Path:
    path = tmp_path / "foa.toml"
    path.write_text(HEAD + devices)
    return path


def _wire_offers(path: Path) -> dict[str, protocol.FlexOffer]:
    """Each device's offer as the agent makes it, encoded and decoded as FMAN receives it."""
    cfg, errors = check_config_file(path)
    assert errors == [] and cfg is not None
    out = {}
    for device in build_devices(cfg.devices, clock=RealClock()):
        assert device.generator is not None
        ctx = OfferContext(
            agent=cfg.id,
            device=device.id,
            now=NOW,
            resolution_s=cfg.resolution_s,
            grid_node=device.config.grid_node,
            mode=device.config.trading_mode,
            measurement=Measurement(ts=NOW, state={"temp_c": 21.0}),
        )
        offer = device.generator.offer(ctx)
        assert offer is not None
        assert protocol.validate_offer(offer) == []
        payload = protocol.encode(offer, ts=NOW)
        out[device.id] = protocol.decode(payload, expect="offer").body
    assert out
    return out


def _fmar_asks(offer: protocol.FlexOffer) -> tuple[list[float], list[float]]:
    """The asks FMAR reads from ``offer``'s prices, over a market covering its whole window."""
    res = offer.resolution_s
    start, latest = protocol.start_window(offer)
    end = latest + max(p.n_slots for p in protocol.effective_profiles(offer)) * res
    book = book_from_builtins(
        {
            "market": {"start": start, "slots": (end - start) // res, "resolution_s": res},
            "sell": [{"offer": protocol.to_builtins(offer)}],
        }
    )
    (order,) = book.sell
    return order_asks(book.market, order)


def test_asks_in_foa_toml_come_back_from_fmars_parser(tmp_path):
    path = _config(
        tmp_path,
        """
[devices.hp]
driver = "sim"
model = "heat_pump"
generator = "heat_pump"
trading_mode = "direct"
ask_up_eur_per_kwh = 0.08
ask_down_eur_per_kwh = 0.08

[devices.freezer]
driver = "sim"
model = "freezer"
generator = "freezer"
trading_mode = "direct"
ask_up_eur_per_kwh = 0.03
""",
    )
    offers = _wire_offers(path)
    for device, ask in (("hp", 0.08), ("freezer", 0.03)):
        offer = offers[device]
        assert offer.mode == "direct"
        up, down = _fmar_asks(offer)
        assert up and up == down == [ask] * len(up), device


def test_a_comfort_priority_becomes_the_asks_of_its_rule(tmp_path):
    path = _config(
        tmp_path,
        """
[devices.hp]
driver = "sim"
model = "heat_pump"
generator = "heat_pump"
trading_mode = "direct"
comfort_priority = 3
""",
    )
    up, down = _fmar_asks(_wire_offers(path)["hp"])
    assert PRIORITY_ASKS[3] == 0.10
    assert up and up == down == [0.10] * len(up)


def test_different_asks_up_and_down_travel_as_the_larger_one(tmp_path):
    """The wire has one ask for both directions: the larger, so that neither direction is
    sold below what the user asked for it."""
    path = _config(
        tmp_path,
        """
[devices.hp]
driver = "sim"
model = "heat_pump"
generator = "heat_pump"
trading_mode = "direct"
ask_up_eur_per_kwh = 0.04
ask_down_eur_per_kwh = 0.15
price_max_eur_per_kwh = 0.4
""",
    )
    offer = _wire_offers(path)["hp"]
    assert offer.prices is not None
    assert {(p.min, p.max) for p in offer.prices.slots} == {(0.15, 0.4)}
    up, down = _fmar_asks(offer)
    assert up and up == down == [0.15] * len(up)
