"""Every version of every contract, and which one is in force at a delivery.

Versions are never edited: adding a version whose ``(id, version)`` exists with other content
is refused; adding the same content again changes nothing (so loading a directory twice is
harmless). Which version governs a delivery:

- of one contract id, the **highest version that began at or before the delivery** governs it,
  if the delivery lies before that version's ``valid_until`` (a new version takes over from its
  ``valid_from`` for good: older versions never come back, and if it ends, the contract ends;
  earlier deliveries keep the version they had);
- a later version may not start before the moment it is added (``now``): the past stays
  settled under the terms that were in force;
- two different contracts may not cover the same device of the same party at the same time,
  so at most one contract governs a delivery.

Ending a contract is a new version that repeats the last one from now on, with ``valid_until``
set (:meth:`ContractBook.ended`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import pairwise

from msgspec.structs import replace

from ._contract import Contract
from ._errors import ContractError


class ContractBook:
    """An immutable set of contract versions; :meth:`with_version` returns a new book."""

    __slots__ = ("_by_id", "_by_party")

    def __init__(self, contracts: Iterable[Contract] = (), *, now: float | None = None) -> None:
        self._by_id: dict[str, tuple[Contract, ...]] = {}
        self._by_party: dict[str, tuple[str, ...]] = {}
        for c in sorted(contracts, key=lambda c: (c.id, c.version)):
            self._add(c, now=now)

    def __iter__(self) -> Iterator[Contract]:
        for versions in self._by_id.values():
            yield from versions

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def versions(self, contract_id: str) -> tuple[Contract, ...]:
        """Every version of ``contract_id``, oldest first (empty if unknown)."""
        return self._by_id.get(contract_id, ())

    def latest(self, contract_id: str) -> Contract:
        versions = self.versions(contract_id)
        if not versions:
            raise ContractError("id", f"no contract {contract_id!r}")
        return versions[-1]

    def with_version(self, contract: Contract, *, now: float | None = None) -> ContractBook:
        """A book with ``contract`` added (checked against every version already here); with
        ``now``, a later version must not start before it."""
        book = ContractBook()
        book._by_id = dict(self._by_id)
        book._by_party = dict(self._by_party)
        book._add(contract, now=now)
        return book

    def ended(self, contract_id: str, at: int, *, now: int) -> Contract:
        """The next version of ``contract_id``: the latest one, in force from ``now`` (or its
        own start, if later) until ``at``."""
        last = self.latest(contract_id)
        if at < now:
            raise ContractError("valid_until", "a contract cannot end in the past")
        start = max(last.valid_from, now)
        if at <= start:
            raise ContractError("valid_until", "a contract ends after it begins")
        if last.valid_until is not None and at >= last.valid_until:
            raise ContractError("valid_until", "the contract already ends by then")
        return replace(last, version=last.version + 1, valid_from=start, valid_until=at)

    def in_force(self, party: str, device: str, at: float) -> Contract | None:
        """The contract version that governs ``device`` of ``party`` at time ``at``."""
        for cid in self._by_party.get(party, ()):
            c = _governing(self._by_id[cid], at)
            if c is not None and c.covers(device):
                return c
        return None

    def of_party(self, party: str, at: float) -> list[Contract]:
        """The versions that govern ``party``'s contracts at ``at``, one per contract."""
        out = []
        for cid in self._by_party.get(party, ()):
            c = _governing(self._by_id[cid], at)
            if c is not None:
                out.append(c)
        return out

    def in_force_segments(
        self, contract_id: str, start: int, end: int
    ) -> list[tuple[Contract, int, int]]:
        """``(version, from, to)``: which version of ``contract_id`` is in force over which part
        of ``[start, end)`` (parts where none is are left out)."""
        return _segments(self.versions(contract_id), start, end)

    # -- checks ------------------------------------------------------------------------------

    def _add(self, c: Contract, *, now: float | None) -> None:
        versions = self._by_id.get(c.id, ())
        same = next((v for v in versions if v.version == c.version), None)
        if same is not None:
            if same != c:
                raise ContractError(
                    "version",
                    f"contract {c.id!r} version {c.version} exists with other content; "
                    "a change is a new version",
                )
            return
        if versions:
            last = versions[-1]
            if c.version < last.version:
                raise ContractError(
                    "version", f"{c.version} is older than {c.id!r} version {last.version}"
                )
            if c.party.id != last.party.id:
                raise ContractError(
                    "party.id", f"contract {c.id!r} is with {last.party.id!r}; it cannot change"
                )
            if now is not None and c.valid_from < now:
                raise ContractError(
                    "valid_from",
                    "a new version cannot start in the past (deliveries before now stay under "
                    "the version they had)",
                )
        mine = _segments((*versions, c), _EPOCH_MIN, _EPOCH_MAX)
        for other_id in self._by_party.get(c.party.id, ()):
            if other_id == c.id:
                continue
            theirs = _segments(self._by_id[other_id], _EPOCH_MIN, _EPOCH_MAX)
            for a, a0, a1 in mine:
                for b, b0, b1 in theirs:
                    if a0 < b1 and b0 < a1 and _share_devices(a, b):
                        raise ContractError(
                            "devices",
                            f"contract {c.id!r} and contract {other_id!r} (version {b.version}) "
                            f"both cover a device of {c.party.id!r} from {max(a0, b0)}",
                        )
        self._by_id[c.id] = (*versions, c)
        if c.id not in self._by_party.get(c.party.id, ()):
            self._by_party[c.party.id] = (*self._by_party.get(c.party.id, ()), c.id)


_EPOCH_MIN = 0
_EPOCH_MAX = 7_258_118_400


def _segments(
    versions: tuple[Contract, ...], start: int, end: int
) -> list[tuple[Contract, int, int]]:
    cuts = {start, end}
    for c in versions:
        for t in (c.valid_from, c.valid_until):
            if t is not None and start < t < end:
                cuts.add(t)
    points = sorted(cuts)
    out: list[tuple[Contract, int, int]] = []
    for a, b in pairwise(points):
        current = _governing(versions, a)
        if current is None:
            continue
        if out and out[-1][0] is current and out[-1][2] == a:
            out[-1] = (current, out[-1][1], b)
        else:
            out.append((current, a, b))
    return out


def _governing(versions: tuple[Contract, ...], t: float) -> Contract | None:
    """The version of one contract in force at ``t`` (``versions`` oldest first)."""
    for c in reversed(versions):
        if c.valid_from <= t:
            return c if c.in_force(t) else None
    return None


def _share_devices(a: Contract, b: Contract) -> bool:
    return not a.devices or not b.devices or bool(set(a.devices) & set(b.devices))
