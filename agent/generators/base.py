"""What turns a device's state into a Flex-Offer.

One generator per load type, registered in the ``atp.generators`` entry-point group under its
``name`` so that third parties add more without touching the agent. Generators are pure: the
state and the time come in through :class:`OfferContext`, an offer (or nothing) comes out.
Every offer they make passes :func:`protocol.validate_offer`, default schedule included.

A device with a state (a battery's charge, a building's heat) may have several episodes live
at once: the block executing now and, when ``lead_s`` is longer than a block, later blocks
already offered or scheduled. Each later episode starts from whatever the earlier ones leave,
so the context carries them (:attr:`OfferContext.episodes`): an offer that ignored them would
promise energy the device cannot deliver once the earlier schedules have run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agent.drivers.base import Measurement
from protocol import FlexOffer, OfferState, TradingMode

if TYPE_CHECKING:
    from agent.store import Plan


@dataclass(frozen=True, slots=True)
class Episode:
    """A live episode of the device: an offer ``offered``, ``accepted``, ``assigned`` or
    ``executing``, or ``rejected`` with its default still to run, with the plan in force for it
    (FMAN's schedule or the default), if any.

    ``id`` is the id its generator gave it (the published ``offer.id`` may carry a suffix).
    ``fallback`` is the revision FMAN accepted before ``offer``, while the update to ``offer``
    awaits FMAN's answer: if FMAN refuses the update, the offer goes back to it, so what the
    episode may do is what either revision allows."""

    id: str
    offer: FlexOffer
    state: OfferState
    plan: Plan | None = None
    fallback: FlexOffer | None = None

    def offers(self) -> tuple[FlexOffer, ...]:
        """The revisions whose schedules the device may still run: the offer, and its
        fallback while an update is in flight."""
        return (self.offer,) if self.fallback is None else (self.offer, self.fallback)

    def plan_final(self, now: float) -> bool:
        """Whether :attr:`plan` is what the device will run: the plan can no longer change
        once the offer executes, is rejected (its default runs) or is past its
        ``assignment_before`` (FMAN can no longer send another schedule; the fallback's
        deadline counts too, as the offer may go back to it). Before that, FMAN may still
        replace the plan with any schedule the offer allows."""
        if self.plan is None:
            return False
        if self.state in ("executing", "rejected"):
            return True
        return all(now >= o.assignment_before for o in self.offers())


@dataclass(frozen=True, slots=True)
class OfferContext:
    """Everything a generator may base an offer on."""

    agent: str
    device: str
    now: int
    resolution_s: int = 900
    grid_node: str = ""
    mode: TradingMode = "delegated"
    measurement: Measurement | None = None
    #: The device's live episodes, earliest first, as the agent core knows them; the episode
    #: the generator describes again is among them under its id. A generator of a stateful
    #: device starts the episode it offers from what the earlier ones may leave.
    episodes: tuple[Episode, ...] = ()


class Generator(ABC):
    """Base of every Flex-Offer generator.

    The constructor checks ``params`` (the device's config table) and raises
    :class:`~agent.errors.ConfigError` naming the key for anything wrong; ``key_prefix``
    (``"devices.hp1."``) is put in front of the key so the user sees where the table is."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(self, params: Mapping[str, Any], *, key_prefix: str = "") -> None:
        self.params = params
        self.key_prefix = key_prefix

    @abstractmethod
    def offer(self, ctx: OfferContext) -> FlexOffer | None:
        """The offer for the device's current state, or ``None`` when it has nothing to offer.

        Called again whenever the state changes; an offer whose content changed materially
        is published as an update (same id, higher revision) by the agent core. The id names
        the episode the offer describes (a planning block, a charging session): an offer with
        another id is another episode, never an update of this one."""

    def still_valid(self, offer: FlexOffer, ctx: OfferContext) -> bool:
        """Whether ``offer``, made earlier for another episode than the one :meth:`offer`
        describes now (or when it describes none), still holds for the device.

        The core withdraws a waiting offer for which this is false. The default says that an
        episode ends when the generator has nothing to offer any more (the car left, the
        dishwasher was started by hand). Generators of devices that are always there (planning
        blocks) override it: a block offered stays valid when the next block has nothing."""
        return self.offer(ctx) is not None
