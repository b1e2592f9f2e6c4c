"""Errors raised by the spatial algorithms in :mod:`gis`.

Each carries a message meant for a person: which input, and why.
"""


class GisError(ValueError):
    """Base class: bad input to a spatial algorithm."""


class CRSError(GisError):
    """A coordinate reference system is missing, unknown or implausible for the data."""


class GeometryError(GisError):
    """A geometry is empty, invalid beyond repair, or of the wrong type."""


class NotEnoughDataError(GisError):
    """A statistic cannot be computed on the data given (too few units, no variance...)."""
