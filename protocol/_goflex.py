"""Import and export of GOFLEX JSON: one offer per document, positive energy is consumption.

Earlier Flex-Offer systems (MIRABEL, TotalFlex, GOFLEX) exchange offers as JSON documents with
``…Interval`` and ``…Time`` fields and ``flexOfferProfileConstraints`` whose
``energyConstraintList`` entries are ``{lower, upper}``. An older version of the FlexOffer
specification wraps such a document as ``{"flexOffer": {...}}``; that is read too. The
specification's own current form (a ``{"flexOffer": [...]}`` list, ``lowerBound``/
``upperBound``, positive is production) is :mod:`protocol._spec`. The mapping decisions the
two share are listed in :mod:`protocol._foreign`; GOFLEX writes both ``…Interval`` and
``…Time`` fields, and ``"flexOfferSchedule": null`` for an offer without a schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import ConversionError, FieldError
from ._foreign import GOFLEX, offer_from_document, offer_to_document
from ._models import FlexOffer, Schedule


def to_goflex(offer: FlexOffer, schedule: Schedule | None = None) -> dict[str, Any]:
    """``offer`` (and optionally its current schedule) as a GOFLEX JSON document."""
    return offer_to_document(offer, schedule, GOFLEX)


def from_goflex(document: Mapping[str, Any]) -> tuple[FlexOffer, Schedule | None]:
    """The offer (and its ``flexOfferSchedule``, if any) of a GOFLEX JSON document.

    Raises :class:`ConversionError` listing every field that cannot be mapped, or
    :class:`DecodeError` when the mapped offer breaks a validation rule."""
    doc: Mapping[str, Any] = document
    if set(doc) == {"flexOffer"}:
        inner = doc["flexOffer"]
        if not isinstance(inner, Mapping):
            raise ConversionError(
                [
                    FieldError(
                        "flexOffer",
                        "a list of offers is the FlexOffer specification's form: "
                        "read it with protocol.from_flexoffer_spec",
                    )
                ],
                context="GOFLEX",
            )
        doc = inner
    return offer_from_document(doc, GOFLEX)


def is_goflex(document: Any) -> bool:
    """Whether a parsed JSON document looks like GOFLEX (or the FlexOffer specification's
    form, see :func:`protocol.is_flexoffer_spec`) rather than the project's form."""
    if isinstance(document, Mapping) and set(document) == {"flexOffer"}:
        return True
    return isinstance(document, Mapping) and "flexOfferProfileConstraints" in document
