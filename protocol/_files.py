"""Offers in files: the project's JSON form, GOFLEX JSON, or MessagePack wire messages.

Pure functions over bytes, shared by ``atp offer``, ``atp plan`` and the tests; the caller
reads and writes the file. A JSON file holds one offer or a list of offers; a MessagePack
file holds one or more wire messages back to back (what a subscriber would have received).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgpack
import msgspec

from ._codec import decode, encode, from_builtins, to_json
from ._errors import ConversionError, DecodeError, FieldError, ProtocolError
from ._goflex import from_goflex, is_goflex, to_goflex
from ._models import FlexOffer

Format = Literal["json", "goflex", "msgpack"]


def detect_format(data: bytes) -> Format:
    """``json`` (the project's form), ``goflex`` or ``msgpack``, judged from the content."""
    head = data.lstrip()[:1]
    if head not in (b"{", b"["):
        return "msgpack"
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "json"  # reading it will report the JSON error with its position
    first = doc[0] if isinstance(doc, list) and doc else doc
    return "goflex" if is_goflex(first) else "json"


def read_offers(data: bytes) -> list[FlexOffer]:
    """Every offer in ``data``, validated; a :class:`DecodeError` lists every problem of every
    offer, paths prefixed by the offer's position (``[2].profiles[0].lower_kwh[5]``)."""
    errors: list[FieldError] = []
    offers: list[FlexOffer] = []
    for where, item in _items(data, errors):
        try:
            offers.append(item())
        except (DecodeError, ConversionError) as exc:
            errors.extend(FieldError(_join(where, e.path), e.message) for e in exc.errors)
    if errors:
        raise DecodeError(errors)
    return offers


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path


def _items(data: bytes, errors: list[FieldError]) -> list[tuple[str, Any]]:
    if detect_format(data) == "msgpack":
        return _msgpack_items(data, errors)
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # strings must be UTF-8
        errors.append(FieldError("", f"not valid JSON: {exc}"))
        return []
    docs, many = (doc, True) if isinstance(doc, list) else ([doc], False)
    out = []
    for i, d in enumerate(docs):
        where = f"[{i}]" if many else ""
        if is_goflex(d):
            out.append((where, lambda d=d: from_goflex(d)[0]))
        else:
            out.append((where, lambda d=d: from_builtins(d, FlexOffer)))
    return out


def _msgpack_items(data: bytes, errors: list[FieldError]) -> list[tuple[str, Any]]:
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    out = []
    start = 0
    i = 0
    try:
        for _ in unpacker:
            end = unpacker.tell()
            chunk = data[start:end]
            out.append((f"[{i}]", lambda c=chunk: decode(c, expect="offer").body))
            start, i = end, i + 1
    except (msgpack.UnpackException, ValueError) as exc:
        errors.append(FieldError(f"[{i}]", f"not valid MessagePack: {exc}"))
    if not out and not errors:
        errors.append(FieldError("", "empty input"))
    return out if len(out) > 1 else [("", out[0][1])] if out else []


def write_offers(offers: Sequence[FlexOffer], fmt: Format, *, ts: int) -> bytes:
    """``offers`` in ``fmt``; one offer is written bare, several as a list (or a stream)."""
    if fmt == "msgpack":
        return b"".join(encode(o, ts=ts, msg_id=f"{o.id}:{o.revision}") for o in offers)
    if fmt == "goflex":
        docs = [to_goflex(o) for o in offers]
        return msgspec.json.format(msgspec.json.encode(docs[0] if len(docs) == 1 else docs))
    if fmt == "json":
        return msgspec.json.format(to_json(offers[0] if len(offers) == 1 else list(offers)))
    raise ProtocolError(f"unknown format {fmt!r}")
