"""What the Tasmota and Shelly drivers share: an MQTT link, the plug's online state, waiting for
the plug's answer, and the freshness rule.

A smart plug is an on/off device (``modulating = false``): the EMS meets a slot's energy by
switching it on and off within the slot, at ``max_power_w`` (the rated power of what is
plugged in) when on. A reading is fresh when the plug's last energy report is at most
``max_age_s`` seconds old (wall-clock time: the plug's telemetry period is real time, whatever
the agent's clock); otherwise the driver asks the plug and waits ``timeout_s`` for the answer,
and a plug that does not answer, or whose last will says it is offline, is a
:class:`~agent.errors.DeviceFault`, never an old value.

Common config keys: ``broker`` (``mqtt://host:1883``, ``mqtts://…`` for TLS), ``username``,
``password``, ``max_power_w`` (3680: a 16 A plug), ``timeout_s`` (3), ``max_age_s`` (30).
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable

from agent.drivers.base import Driver, Limits
from agent.drivers.mqtt_link import BrokerConfig, MqttLink
from agent.errors import DeviceFault
from agent.params import Params


class MqttPlug(Driver):
    """Base of the MQTT smart-plug drivers."""

    def setup(self, p: Params) -> None:
        self.broker = BrokerConfig.from_params(p)
        self.max_power_w = p.number("max_power_w", 3680.0, min=1.0, max=50_000.0)
        self.timeout_s = p.number("timeout_s", 3.0, min=0.1, max=60.0)
        self.max_age_s = p.number("max_age_s", 30.0, min=0.0, max=3600.0)
        self.online: bool | None = None  # from the plug's last will; None: not heard yet
        self._cond = asyncio.Condition()
        self._link: MqttLink | None = None
        self._configure(p)

    @abstractmethod
    def _configure(self, p: Params) -> None:
        """Read the plug family's own keys."""

    @abstractmethod
    def subscriptions(self) -> list[str]: ...

    @abstractmethod
    def handle(self, topic: str, payload: bytes) -> None:
        """Take in one message from the plug (parse errors are ValueError and friends)."""

    async def on_connect(self) -> None:
        """Ask the plug for its state after (re)connecting; must only publish."""

    @property
    def limits(self) -> Limits:
        return Limits(max_power_w=self.max_power_w, modulating=False)

    @property
    def client_id(self) -> str:
        return f"foa-{self.name}-{self.device_id}"

    async def open(self) -> None:
        if self._link is None:
            self._link = MqttLink(
                broker=self.broker,
                client_id=self.client_id,
                subscriptions=self.subscriptions(),
                on_message=self._on_message,
                on_connect=self.on_connect,
                device=self.device_id,
            )
        await self._link.start(wait_s=self.timeout_s)

    async def close(self) -> None:
        if self._link is not None:
            await self._link.stop()
            self._link = None

    async def _on_message(self, topic: str, payload: bytes) -> None:
        self.handle(topic, payload)
        async with self._cond:
            self._cond.notify_all()

    async def publish(self, topic: str, payload: str | bytes) -> None:
        if self._link is None:
            await self.open()
        assert self._link is not None
        await self._link.publish(topic, payload)

    def check_online(self) -> None:
        if self._link is None or not self._link.connected:
            raise DeviceFault(self.device_id, f"broker {self.broker.display} not connected")
        if self.online is False:
            raise DeviceFault(self.device_id, "plug is offline (its last will)")

    async def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate`` holds after some message, at most ``timeout_s``."""
        try:
            async with self._cond:
                await asyncio.wait_for(self._cond.wait_for(predicate), self.timeout_s)
        except TimeoutError:
            self.check_online()
            raise DeviceFault(
                self.device_id, f"{what}: no answer in {self.timeout_s:g} s"
            ) from None

    @staticmethod
    def monotonic() -> float:
        return asyncio.get_running_loop().time()

    async def set_power(self, power_w: float) -> None:
        await self.set_on(self.check_set_point(power_w) > 0.0)
