"""FMAN, the Flex-Offer Manager: the aggregator's cloud workers.

Ingest (:mod:`.ingest`) takes offers, withdrawals, meter readings, statuses and schedule
answers from the agents over shared MQTT subscriptions, judges them (:mod:`.acceptance`) and
keeps them in the store (:mod:`.store`) before acknowledging; the planning cycle
(:mod:`.cycle`) plans the accepted offers through the planner interface of
:mod:`cloud.optim`, sends schedules back, and checks their execution against meter readings
(:mod:`.execution`). :mod:`.worker` puts these together in one process; ``atp fman run``
starts one.
"""

from ._errors import BusError, ConfigError, FmanError, StoreError
from .config import Config, config_from_dict, load_config
from .store import Store, StoreReader, open_reader, open_store

__all__ = [
    "BusError",
    "Config",
    "ConfigError",
    "FmanError",
    "Store",
    "StoreError",
    "StoreReader",
    "config_from_dict",
    "load_config",
    "open_reader",
    "open_store",
]
