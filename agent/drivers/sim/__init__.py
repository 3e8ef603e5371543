"""Simulated devices: the ``sim`` driver and its physical models.

The fleet simulator, the demo and the tests run agents against these instead of hardware. A
simulated device integrates the same physics the generators predict with
(:mod:`agent.physics`), driven by the agent's :class:`~agent.clock.Clock` (so a simulated day
passes in minutes), with the day-to-day randomness of real use (weather, arrivals, showers)
drawn deterministically from ``seed``.
"""

from agent.drivers.sim.driver import MODELS, SimDriver

__all__ = ["MODELS", "SimDriver"]
