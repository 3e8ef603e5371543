"""Offer files: the project's JSON form, GOFLEX JSON, the FlexOffer specification's JSON form, or
MessagePack wire messages; each may hold offers and the schedules assigned to them.

Pure functions over bytes, shared by ``atp offer``, ``atp plan`` and the tests; the caller
reads and writes the file.

- The project's JSON form is one document or a list of documents; a document with an
  ``offer_id`` is a schedule, any other an offer. A schedule is written right after its offer.
- GOFLEX JSON is one offer document or a list of them; an offer's schedule is its
  ``flexOfferSchedule``.
- The FlexOffer specification's form is ``{"flexOffer": [...]}``: offers with their
  schedules inside, and schedules of offers not in the file as response entries.
- MessagePack is wire messages back to back (what a subscriber would have received):
  ``offer`` and ``schedule`` messages.

Every schedule whose offer is in the same file is checked against it
(:func:`protocol.check_schedule`); one whose offer is not is checked on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import msgpack
import msgspec

from ._codec import decode, encode, from_builtins, to_json
from ._errors import ConversionError, DecodeError, FieldError, ProtocolError
from ._feasibility import check_schedule
from ._goflex import from_goflex, is_goflex, to_goflex
from ._models import FlexOffer, Schedule
from ._spec import from_flexoffer_spec, is_flexoffer_spec, to_flexoffer_spec

Format = Literal["json", "goflex", "flexoffer", "msgpack"]
FORMATS: tuple[Format, ...] = ("json", "goflex", "flexoffer", "msgpack")


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferFile:
    """What an offer file holds, in file order: offers, and schedules assigned to offers."""

    offers: tuple[FlexOffer, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    #: the form the file was read from
    format: Format = "json"

    def unmatched(self) -> list[Schedule]:
        """The schedules whose offer is not in the file (checked on their own only)."""
        ids = {o.id for o in self.offers}
        return [s for s in self.schedules if s.offer_id not in ids]


#: One item of a file: where it is, and how to read it into offers and schedules.
_Item = tuple[str, Callable[[], tuple[list[FlexOffer], list[tuple[str, Schedule]]]]]


def detect_format(data: bytes) -> Format:
    """``json`` (the project's form), ``goflex``, ``flexoffer`` or ``msgpack``, judged from the
    content (a file that is none of them is called by the form it comes closest to)."""
    doc = _json(data)
    if doc is _NOT_JSON:
        return "json" if data.lstrip()[:1] in (b"{", b"[") else "msgpack"
    if is_flexoffer_spec(doc):
        return "flexoffer"
    first = doc[0] if isinstance(doc, list) and doc else doc
    if is_flexoffer_spec(first):
        return "flexoffer"
    return "goflex" if is_goflex(first) else "json"


_NOT_JSON = object()


def _json(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _NOT_JSON


def read_offer_file(data: bytes) -> OfferFile:
    """Every offer and schedule in ``data``, validated; a :class:`DecodeError` lists every
    problem of every item, paths prefixed by the item's position (``[2].profiles[0]...``)."""
    errors: list[FieldError] = []
    offers: list[FlexOffer] = []
    schedules: list[tuple[str, Schedule]] = []
    fmt = detect_format(data)
    for where, item in _items(data, fmt, errors):
        try:
            got_offers, got_schedules = item()
        except (DecodeError, ConversionError) as exc:
            errors.extend(FieldError(_join(where, e.path), e.message) for e in exc.errors)
            continue
        offers += got_offers
        schedules += [(_join(where, w), s) for w, s in got_schedules]
    by_id = {o.id: o for o in offers}
    for where, s in schedules:
        offer = by_id.get(s.offer_id)
        if offer is not None:
            errors.extend(
                FieldError(_join(where, e.path), e.message) for e in check_schedule(offer, s)
            )
    if errors:
        raise DecodeError(errors)
    return OfferFile(offers=tuple(offers), schedules=tuple(s for _, s in schedules), format=fmt)


def read_offers(data: bytes) -> list[FlexOffer]:
    """Every offer in ``data``, validated (see :func:`read_offer_file`; schedules in the file
    are checked and left out)."""
    return list(read_offer_file(data).offers)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path


def _items(data: bytes, fmt: Format, errors: list[FieldError]) -> list[_Item]:
    if fmt == "msgpack":
        return _msgpack_items(data, errors)
    doc = _json(data)
    if doc is _NOT_JSON:
        try:
            msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # strings must be UTF-8
            errors.append(FieldError("", f"not valid JSON: {exc}"))
        return []
    if fmt == "flexoffer" and isinstance(doc, dict):
        return [("", lambda: _spec_item(doc))]
    if not isinstance(doc, dict | list):
        errors.append(
            FieldError(
                "",
                f"not an offer file: it holds {_what(doc)}, where an offer, a schedule "
                "or a list of them was expected",
            )
        )
        return []
    docs, many = (doc, True) if isinstance(doc, list) else ([doc], False)
    if not docs:
        errors.append(FieldError("", "an empty list: no offers or schedules"))
    out: list[_Item] = []
    for i, d in enumerate(docs):
        where = f"[{i}]" if many else ""
        out.append((where, partial(_json_item, d)))
    return out


def _what(doc: Any) -> str:
    """``doc`` named for a message: ``the JSON number 42``."""
    if doc is None:
        return "JSON null"
    kind = {bool: "boolean", int: "number", float: "number", str: "string"}.get(type(doc))
    if kind is None:
        return "a JSON list" if isinstance(doc, list) else "a JSON object"
    text = msgspec.json.encode(doc).decode()
    return f"the JSON {kind} {text[:32]}{'…' if len(text) > 32 else ''}"


def _json_item(d: Any) -> tuple[list[FlexOffer], list[tuple[str, Schedule]]]:
    if not isinstance(d, dict):
        raise DecodeError([FieldError("", f"expected an offer or a schedule, got {_what(d)}")])
    if is_flexoffer_spec(d):
        return _spec_item(d)
    if is_goflex(d):
        offer, schedule = from_goflex(d)
        return [offer], [] if schedule is None else [("flexOfferSchedule", schedule)]
    if "offer_id" in d:
        return [], [("", from_builtins(d, Schedule))]
    return [from_builtins(d, FlexOffer)], []


def _spec_item(d: Any) -> tuple[list[FlexOffer], list[tuple[str, Schedule]]]:
    offers, schedules = from_flexoffer_spec(d)
    return offers, [("", s) for s in schedules]


def _msgpack_items(data: bytes, errors: list[FieldError]) -> list[_Item]:
    if not data.strip():
        errors.append(FieldError("", "empty input"))
        return []
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data) + 1, strict_map_key=False)
    unpacker.feed(data)
    out: list[_Item] = []
    start = 0
    while start < len(data):
        try:
            obj = unpacker.unpack()
        except (msgpack.UnpackException, ValueError, TypeError):
            break
        if not (isinstance(obj, dict) and {"v", "kind", "body"} <= obj.keys()):
            break
        end = unpacker.tell()
        out.append((f"[{len(out)}]", partial(_message_item, data[start:end])))
        start = end
    if start < len(data):  # what follows is not a wire message: the stream cannot go on
        if not out:
            errors.append(
                FieldError(
                    "",
                    "not an offer file: neither JSON nor MessagePack wire messages "
                    f"(it starts with the bytes {data[:8].hex(' ')})",
                )
            )
            return []
        errors.append(
            FieldError(f"[{len(out)}]", f"not a MessagePack wire message (from byte {start})")
        )
    return [("", out[0][1])] if len(out) == 1 else out


def _message_item(chunk: bytes) -> tuple[list[FlexOffer], list[tuple[str, Schedule]]]:
    message = decode(chunk)
    if isinstance(message.body, FlexOffer):
        return [message.body], []
    if isinstance(message.body, Schedule):
        return [], [("", message.body)]
    raise DecodeError(
        [FieldError("kind", f"a {message.kind!r} message, not an offer or a schedule")]
    )


def write_offer_file(content: OfferFile, fmt: Format, *, ts: int) -> bytes:
    """``content`` in ``fmt``. A single offer (or schedule) is written bare, several as a list
    (or a stream); each offer's schedule follows it (or travels inside it).

    Raises :class:`ConversionError` when ``fmt`` cannot carry the content: GOFLEX has no place
    for a schedule without its offer, and GOFLEX and the specification's form carry one
    schedule per offer."""
    offers, schedules = content.offers, content.schedules
    if fmt == "msgpack":
        return b"".join(
            encode(body, ts=ts, msg_id=_message_id(body)) for body in _in_order(offers, schedules)
        )
    if fmt == "flexoffer":
        return _pretty(to_flexoffer_spec(offers, schedules))
    if fmt == "goflex":
        by_offer = _one_per_offer(offers, schedules)
        docs = [to_goflex(o, by_offer.get(o.id)) for o in offers]
        return _pretty(docs[0] if len(docs) == 1 else docs)
    if fmt == "json":
        bodies = _in_order(offers, schedules)
        return msgspec.json.format(to_json(bodies[0] if len(bodies) == 1 else bodies))
    raise ProtocolError(f"unknown format {fmt!r}")


def write_offers(
    offers: Sequence[FlexOffer], fmt: Format, *, ts: int, schedules: Sequence[Schedule] = ()
) -> bytes:
    """``offers`` (and their ``schedules``) in ``fmt``: see :func:`write_offer_file`."""
    return write_offer_file(OfferFile(offers=tuple(offers), schedules=tuple(schedules)), fmt, ts=ts)


def _pretty(doc: Any) -> bytes:
    return msgspec.json.format(msgspec.json.encode(doc))


def _message_id(body: FlexOffer | Schedule) -> str:
    if isinstance(body, FlexOffer):
        return f"{body.id}:{body.revision}"
    return f"{body.offer_id}:v{body.version}"


def _in_order(
    offers: Sequence[FlexOffer], schedules: Sequence[Schedule]
) -> list[FlexOffer | Schedule]:
    """Offers in their order, each followed by its schedules; then schedules of other offers."""
    by_offer: dict[str, list[Schedule]] = {}
    for s in schedules:
        by_offer.setdefault(s.offer_id, []).append(s)
    out: list[FlexOffer | Schedule] = []
    for o in offers:
        out.append(o)
        out += by_offer.pop(o.id, [])
    for rest in by_offer.values():
        out += rest
    return out


def _one_per_offer(
    offers: Sequence[FlexOffer], schedules: Sequence[Schedule]
) -> dict[str, Schedule]:
    ids = {o.id for o in offers}
    by_offer: dict[str, Schedule] = {}
    errors = []
    for s in schedules:
        if s.offer_id not in ids:
            errors.append(
                FieldError(
                    "",
                    f"the schedule for offer {s.offer_id!r} has no offer in the file, and a "
                    "GOFLEX document carries a schedule inside its offer (write it as json, "
                    "flexoffer or msgpack)",
                )
            )
        elif s.offer_id in by_offer:
            errors.append(
                FieldError(
                    "",
                    f"two schedules for offer {s.offer_id!r}: a GOFLEX document carries one",
                )
            )
        else:
            by_offer[s.offer_id] = s
    if errors:
        raise ConversionError(errors, context="GOFLEX")
    return by_offer
