"""The protocol's exception tree.

    ProtocolError                 anything this package refuses
    ├── DecodeError               bytes, JSON or a struct that is not a valid message
    ├── ConversionError           a GOFLEX document this model cannot represent
    └── LifecycleError            an offer state change the state machine forbids

Every error that concerns a field carries :class:`FieldError` entries whose ``path`` names it
(``profiles[0].slices[3]``), so a user or a log line can point at the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem at one place of a message; ``path`` is empty for the message as a whole."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ProtocolError(Exception):
    """Root of every error raised by :mod:`protocol`."""


class _FieldErrors(ProtocolError):
    def __init__(self, errors: Iterable[FieldError], *, context: str = "") -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.context = context
        head = f"{context}: " if context else ""
        super().__init__(head + "; ".join(str(e) for e in self.errors))


class DecodeError(_FieldErrors):
    """A payload is not a valid message: wrong bytes, wrong types, unknown version, or a rule
    of :func:`protocol.validate_offer` and friends broken. ``errors`` lists every problem found."""


class ConversionError(_FieldErrors):
    """A foreign document (GOFLEX JSON) cannot be mapped onto the model without losing meaning."""


class LifecycleError(ProtocolError):
    """An offer was asked to move between two states that the lifecycle does not connect."""

    def __init__(self, current: str, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(f"illegal offer state transition {current!r} -> {target!r}")
