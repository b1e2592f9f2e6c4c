"""JSON out, fast: orjson, with GeoJSON geometries spliced in as PostGIS wrote them.

A district's blind-spot map is a thousand grid outlines: parsing each ``ST_AsGeoJSON`` text
into Python lists only to write it out again costs more than the query. A :class:`RawJSON`
carries such text through the service untouched and :func:`dumps` copies it into the output.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class RawJSON:
    """A JSON value already written (e.g. by ``ST_AsGeoJSON``), written out as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def value(self) -> Any:
        """The value itself, parsed (for the rare reader that needs it)."""
        return orjson.loads(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawJSON) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"RawJSON({self.text[:40]!r}…)"


def raw(text: str | None) -> RawJSON | None:
    return RawJSON(text) if text is not None else None


def _default(v: Any) -> Any:
    if isinstance(v, RawJSON):
        return orjson.Fragment(v.text)
    if isinstance(v, Decimal):
        return float(v)
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON; dates and datetimes as ISO 8601, Decimals as numbers, RawJSON as is."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)
