"""The settlement package's exception tree.

    SettleError              anything settlement refuses
    ├── ContractError        a contract (file or value) is wrong, or a new version would edit
    │                        or contradict the book; ``key`` names the field, ``source`` the file
    ├── InputError           the data handed to a settlement run contradicts itself (two offers
    │                        with one id, an award twice); ``path`` names the item
    └── LedgerError          a transaction that does not balance, or a key reused for other
                             postings

Problems with *one* delivery (no contract, a failed sub-meter check, missing readings) are
not exceptions: the run holds that offer's settlement for review with a reason and settles
the rest, because one bad meter must not stop a month's bills.
"""

from __future__ import annotations


class SettleError(Exception):
    """Root of every error raised by :mod:`cloud.settle`."""


class ContractError(SettleError):
    """A contract value is missing or wrong: ``key`` is its dotted path, ``source`` the file it
    came from (empty for a value built in code)."""

    def __init__(self, key: str, message: str, *, source: str = "") -> None:
        self.key = key
        self.source = source
        self.message = message
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class InputError(SettleError):
    """The inputs of a settlement run are inconsistent; ``path`` names the offending item
    (``offers[3].id``, ``awards[fmar-1/g7/a2]``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class LedgerError(SettleError):
    """A transaction does not balance, or an idempotency key was reused for other postings;
    the message names the transaction's key."""
