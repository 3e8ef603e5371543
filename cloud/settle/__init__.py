"""Contracts, settlement, the ledger, bills and KPIs: how delivered flexibility becomes money.

Pure: typed rows in, typed rows out; no database, no network, and no clock read here (a run
is handed the time it books at). The FMAN store produces the inputs (:class:`ExecutedOffer`,
:class:`Reading`, :class:`MarketAward`, the ledger's :class:`Transaction` rows) and keeps the
outputs. docs/settlement.md describes every rule with worked examples.
"""

from ._awards import AwardSettlement, MemberShare
from ._bill import (
    AGGREGATOR,
    Bill,
    BillDay,
    BillLine,
    accounts_of,
    make_bill,
    make_bills,
    parties,
)
from ._book import ContractBook
from ._contract import (
    Acceptance,
    AcceptanceLimits,
    Baseline,
    Contract,
    Delivery,
    DirectPrice,
    Metering,
    Party,
    RevenueSharing,
    StrictRewards,
    Terms,
    terms_kind,
)
from ._contract_file import (
    check_contract,
    contract_from_dict,
    contract_to_dict,
    dump_contract,
    load_contract,
    parse_contract,
    write_contract,
)
from ._delivery import SlotRecord, delivered
from ._errors import ContractError, InputError, LedgerError, SettleError
from ._inputs import AwardMember, ExecutedOffer, MarketAward, Reading, Slots
from ._kpi import HourAdaptation, Kpis, kpi_json, kpis
from ._ledger import (
    KIND_TEXT,
    Posting,
    Transaction,
    aggregator_account,
    balances,
    check_transaction,
    market_account,
    party_account,
    reconcile,
)
from ._money import cents, eur_text, kwh_text, split_cents, wh
from ._period import Period, day_of
from ._render import bill_csv, bill_html, bill_json
from ._settlement import OfferSettlement, Settlement, readings_window, settle

__all__ = [
    "AGGREGATOR",
    "KIND_TEXT",
    "Acceptance",
    "AcceptanceLimits",
    "AwardMember",
    "AwardSettlement",
    "Baseline",
    "Bill",
    "BillDay",
    "BillLine",
    "Contract",
    "ContractBook",
    "ContractError",
    "Delivery",
    "DirectPrice",
    "ExecutedOffer",
    "HourAdaptation",
    "InputError",
    "Kpis",
    "LedgerError",
    "MarketAward",
    "MemberShare",
    "Metering",
    "OfferSettlement",
    "Party",
    "Period",
    "Posting",
    "Reading",
    "RevenueSharing",
    "SettleError",
    "Settlement",
    "SlotRecord",
    "Slots",
    "StrictRewards",
    "Terms",
    "Transaction",
    "accounts_of",
    "aggregator_account",
    "balances",
    "bill_csv",
    "bill_html",
    "bill_json",
    "cents",
    "check_contract",
    "check_transaction",
    "contract_from_dict",
    "contract_to_dict",
    "day_of",
    "delivered",
    "dump_contract",
    "eur_text",
    "kpi_json",
    "kpis",
    "kwh_text",
    "load_contract",
    "make_bill",
    "make_bills",
    "market_account",
    "parse_contract",
    "parties",
    "party_account",
    "readings_window",
    "reconcile",
    "settle",
    "split_cents",
    "terms_kind",
    "wh",
    "write_contract",
]
