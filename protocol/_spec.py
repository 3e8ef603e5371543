"""The FlexOffer specification's own JSON form: ``{"flexOffer": [...]}`` requests and responses.

The public flexoffer-specifications repository (``Specifications.md``, section 1.4) exchanges
a list of offers, ``{"flexOffer": [offer, ...]}``. A *request* entry is an offer: GOFLEX's
field names, except that an energy entry is ``{lowerBound, upperBound}`` and the deadline for
an answer is ``acceptBeforeTime``. A *response* entry names an offer by ``id`` and carries only
its ``flexOfferSchedule``. An entry with neither profile constraints nor a schedule is the
specification's "flexibility removal", which an offer file does not carry.

The sign is the specification's table 1.2: a positive ``lowerBound`` is the least energy
*produced*, a negative one the most energy *consumed*; ``upperBound`` likewise. Positive
energy is production throughout the form (bounds, totals, ``energyAmount`` of schedules),
the opposite of this project, so every energy changes sign on the way in and out, and a
bound pair ``[lowerBound, upperBound]`` becomes ``[-upperBound, -lowerBound]``. ``atpExtensions``
holds the project's own form, unsigned. The rest of the mapping is :mod:`protocol._foreign`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._errors import ConversionError, DecodeError, FieldError
from ._foreign import (
    SPEC,
    Reader,
    extensions,
    offer_from_document,
    offer_to_document,
    read_schedule,
    schedule_extensions,
    schedule_from,
    schedule_json,
)
from ._models import FlexOffer, Schedule


def is_flexoffer_spec(document: Any) -> bool:
    """Whether a parsed JSON document is in the FlexOffer specification's form: a
    ``{"flexOffer": [...]}`` list, or an offer whose energy entries use ``lowerBound``."""
    if not isinstance(document, Mapping):
        return False
    inner: Any = document
    if set(document) == {"flexOffer"}:
        inner = document["flexOffer"]
        if isinstance(inner, list):
            return True
    if not isinstance(inner, Mapping):
        return False
    constraints = inner.get("flexOfferProfileConstraints")
    for c in constraints if isinstance(constraints, list) else ():
        entries = c.get("energyConstraintList") if isinstance(c, Mapping) else None
        for e in entries if isinstance(entries, list) else ():
            if isinstance(e, Mapping) and (SPEC.lower in e or SPEC.upper in e):
                return True
    return False


def _entries(document: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if set(document) == {"flexOffer"}:
        inner = document["flexOffer"]
        if isinstance(inner, list):
            return [(f"flexOffer[{i}].", e) for i, e in enumerate(inner)]
        return [("flexOffer.", inner)]
    return [("", document)]


def from_flexoffer_spec(
    document: Mapping[str, Any],
) -> tuple[list[FlexOffer], list[Schedule]]:
    """The offers (requests) and schedules (their ``flexOfferSchedule``, and responses) of a
    document in the specification's form.

    Raises :class:`ConversionError` listing every field that cannot be mapped, or
    :class:`DecodeError` when a mapped offer or schedule breaks a validation rule; paths start
    with the entry (``flexOffer[2].flexOfferProfileConstraints[0]...``)."""
    offers: list[FlexOffer] = []
    schedules: list[Schedule] = []
    errors: list[FieldError] = []
    invalid = False
    entries = _entries(document)
    if not entries:
        raise ConversionError([FieldError("flexOffer", "an empty list")], context=SPEC.name)
    for prefix, entry in entries:
        try:
            if not isinstance(entry, Mapping):
                errors.append(FieldError(prefix.rstrip("."), "expected an object"))
            elif entry.get("flexOfferProfileConstraints"):
                offer, schedule = offer_from_document(entry, SPEC, prefix=prefix)
                offers.append(offer)
                if schedule is not None:
                    schedules.append(schedule)
            elif entry.get("flexOfferSchedule") is not None:
                schedules.append(_response(entry, prefix))
            else:
                errors.append(
                    FieldError(
                        prefix + "flexOfferProfileConstraints",
                        "empty and no flexOfferSchedule: a flexibility removal, which an "
                        "offer file does not carry (withdraw the offer instead)",
                    )
                )
        except ConversionError as exc:
            errors.extend(exc.errors)  # paths already carry the prefix
        except DecodeError as exc:
            invalid = True
            errors.extend(FieldError(_join(prefix, e.path), e.message) for e in exc.errors)
    if errors:
        raise (DecodeError if invalid else ConversionError)(errors, context=SPEC.name)
    return offers, schedules


def _join(prefix: str, path: str) -> str:
    return prefix + path if path else prefix.rstrip(".")


def _response(entry: Mapping[str, Any], prefix: str) -> Schedule:
    rd = Reader(SPEC, prefix)
    ext = extensions(rd, entry)
    offer_id = entry.get("id")
    if offer_id is None or isinstance(offer_id, Mapping | list) or offer_id == "":
        rd.fail("id", "a response names the offer it schedules")
    parts = read_schedule(rd, entry["flexOfferSchedule"], "flexOfferSchedule")
    if rd.errors:
        raise ConversionError(rd.errors, context=SPEC.name)
    return schedule_from(str(offer_id), parts, ext)


def to_flexoffer_spec(
    offers: Sequence[FlexOffer], schedules: Iterable[Schedule] = ()
) -> dict[str, Any]:
    """``{"flexOffer": [...]}``: each offer as a request with its schedule (if any) inside,
    and each schedule whose offer is not among ``offers`` as a response entry.

    Raises :class:`ConversionError` for two schedules of one offer: the form carries one."""
    by_offer: dict[str, Schedule] = {}
    for s in schedules:
        if s.offer_id in by_offer:
            raise ConversionError(
                [
                    FieldError(
                        "",
                        f"two schedules for offer {s.offer_id!r} (versions "
                        f"{by_offer[s.offer_id].version} and {s.version}): "
                        "the form carries one per offer",
                    )
                ],
                context=SPEC.name,
            )
        by_offer[s.offer_id] = s
    ids = {o.id for o in offers}
    entries = [offer_to_document(o, by_offer.get(o.id), SPEC) for o in offers]
    for s in by_offer.values():
        if s.offer_id not in ids:
            entries.append(
                {
                    "id": s.offer_id,
                    "state": "assigned",
                    "flexOfferSchedule": schedule_json(
                        SPEC, s.start, s.energy_kwh, update_id=s.version
                    ),
                    "atpExtensions": schedule_extensions(s),
                }
            )
    return {"flexOffer": entries}
