"""MessagePack on the wire, JSON on disk: one envelope, typed bodies, errors with field paths.

A wire message is a MessagePack map ``{v, kind, id, ts, body}``:

- ``v`` is the protocol version ``"major.minor"``. A reader accepts any minor version of its
  own major (fields it does not know are ignored) and refuses another major with a clear error.
- ``kind`` names the body type (``offer``, ``schedule``, ``meter``, … see ``KINDS``).
- ``id`` identifies the message for idempotent consumers; ``ts`` is its creation time.

Decoding happens in two steps so that the version is judged before the body: the envelope is
decoded with the body left as raw bytes, then the body is decoded by the typed decoder of its
kind and validated. The output is standard MessagePack; the plain ``msgpack`` package reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union

import msgspec

from ._errors import DecodeError, FieldError
from ._models import KIND_OF, KINDS
from ._tables import field_error
from ._validate import validate

PROTOCOL_VERSION = (1, 4)
VERSION = f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}"
#: Larger payloads are refused before decoding (the broker caps them too).
MAX_PAYLOAD_BYTES = 1 << 20

T = TypeVar("T", bound=msgspec.Struct)


class _InEnvelope(msgspec.Struct):
    v: str
    kind: str
    id: str
    ts: int
    body: msgspec.Raw


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded, validated message."""

    kind: str
    id: str
    ts: int
    body: Any
    version: tuple[int, int] = PROTOCOL_VERSION


def _typed_envelope(kind: str, body: type[msgspec.Struct]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"_{body.__name__}Envelope",
        [("v", str), ("id", str), ("ts", int), ("body", body)],
        tag_field="kind",
        tag=kind,
    )


# One typed envelope per kind, so the usual message is decoded in a single pass; the
# two-step path (envelope first, body as raw bytes) only runs to explain a failure.
_TYPED = {kind: _typed_envelope(kind, cls) for kind, cls in KINDS.items()}
_ANY_KIND = msgspec.msgpack.Decoder(Union[tuple(_TYPED.values())])  # noqa: UP007
_ONE_KIND = {kind: msgspec.msgpack.Decoder(t) for kind, t in _TYPED.items()}
_ENVELOPE = msgspec.msgpack.Decoder(_InEnvelope)
_BODIES = {kind: msgspec.msgpack.Decoder(cls) for kind, cls in KINDS.items()}
# Each decoder yields its key's type, which a dict's type cannot say: hence ``Any``.
_JSON_BODIES: dict[type, msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(cls) for cls in KINDS.values()
}
_ENCODER = msgspec.msgpack.Encoder()
_JSON_ENCODER = msgspec.json.Encoder()
#: What msgspec raises on bad input (invalid UTF-8 in a string surfaces as UnicodeDecodeError).
_BAD_INPUT = (msgspec.MsgspecError, UnicodeDecodeError)


def kind_of(body: msgspec.Struct) -> str:
    """The envelope ``kind`` of a body."""
    try:
        return KIND_OF[type(body)]
    except KeyError:
        raise TypeError(f"{type(body).__name__} is not a protocol message body") from None


def encode(body: msgspec.Struct, *, ts: int, msg_id: str | None = None) -> bytes:
    """``body`` in its envelope as MessagePack bytes. ``msg_id`` defaults to a random UUID."""
    env = _TYPED[kind_of(body)](v=VERSION, id=msg_id or uuid.uuid4().hex, ts=ts, body=body)
    return _ENCODER.encode(env)


def decode(data: bytes | bytearray, *, expect: str | None = None, check: bool = True) -> Message:
    """Decode and validate one wire message.

    ``expect`` names the kind the caller's topic carries; another kind is refused. With
    ``check=False`` only types and ranges are checked, not the semantic rules.
    Raises :class:`DecodeError` and nothing else, whatever the bytes."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise DecodeError([FieldError("", f"payload of {len(data)} bytes > {MAX_PAYLOAD_BYTES}")])
    decoder = _ANY_KIND if expect is None else _ONE_KIND.get(expect)
    if decoder is None:
        raise ValueError(f"unknown message kind {expect!r}")
    try:
        env: Any = decoder.decode(data)
    except _BAD_INPUT:
        raise _explain(data, expect) from None
    version = _parse_version(env.v)
    body = env.body
    kind = KIND_OF[type(body)]
    if check:
        errors = validate(body, types_checked=True)  # the decoder refused NaN and inf
        if errors:
            raise DecodeError(errors, context=kind)
    return Message(kind=kind, id=env.id, ts=env.ts, body=body, version=version)


def _explain(data: bytes | bytearray, expect: str | None) -> DecodeError:
    """Why ``data`` failed to decode, judged in order: envelope, version, kind, body."""
    try:
        env = _ENVELOPE.decode(data)
    except _BAD_INPUT as exc:
        return _mapped(exc, "envelope")
    try:
        _parse_version(env.v)
    except DecodeError as exc:
        return exc
    if expect is not None and env.kind != expect:
        return DecodeError([FieldError("kind", f"expected {expect!r}, got {env.kind[:64]!r}")])
    decoder = _BODIES.get(env.kind)
    if decoder is None:
        return DecodeError([FieldError("kind", f"unknown message kind {env.kind[:64]!r}")])
    try:
        decoder.decode(env.body)
    except _BAD_INPUT as exc:
        return _mapped(exc, env.kind)
    return DecodeError([FieldError("", "not a valid message")])


def _parse_version(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise DecodeError([FieldError("v", f"{v[:32]!r} is not a 'major.minor' version")])
    if int(major) != PROTOCOL_VERSION[0]:
        raise DecodeError(
            [
                FieldError(
                    "v",
                    f"protocol major version {major} is not supported "
                    f"(this build reads {PROTOCOL_VERSION[0]}.x)",
                )
            ]
        )
    return int(major), int(minor)


def _mapped(exc: Exception, context: str) -> DecodeError:
    """msgspec's ``"Expected int - at `$.a[0]`"`` becomes ``FieldError("a[0]", "Expected int")``."""
    return DecodeError([field_error(exc)], context=context)


# -- the project's JSON form (files, CLI, REST-ish tools) ------------------------------------


def to_json(body: msgspec.Struct | Sequence[msgspec.Struct]) -> bytes:
    """The project's JSON form of a body (or a list of bodies): the same fields as on the wire."""
    return _JSON_ENCODER.encode(body)


def from_json(data: bytes | str, cls: type[T], *, check: bool = True) -> T:
    """Decode and validate one body of type ``cls`` from its JSON form."""
    try:
        body = _JSON_BODIES[cls].decode(data)
    except _BAD_INPUT as exc:
        raise _mapped(exc, cls.__name__) from exc
    if check:
        errors = validate(body, types_checked=True)  # the decoder refused NaN and inf
        if errors:
            raise DecodeError(errors, context=cls.__name__)
    return body


def from_builtins(obj: Any, cls: type[T], *, check: bool = True) -> T:
    """Like :func:`from_json` for already parsed JSON (dicts and lists)."""
    try:
        body = msgspec.convert(obj, cls)
    except _BAD_INPUT as exc:
        raise _mapped(exc, cls.__name__) from exc
    if check:
        errors = validate(body, types_checked=True)  # the decoder refused NaN and inf
        if errors:
            raise DecodeError(errors, context=cls.__name__)
    return body


def to_builtins(body: msgspec.Struct) -> Any:
    """A body as plain dicts and lists, exactly as its JSON form parses (tuples become lists)."""
    return msgspec.json.decode(_JSON_ENCODER.encode(body))
