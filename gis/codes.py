"""Administrative codes of the territory: district > street > community > grid.

The first three levels use the National Bureau of Statistics 12-digit statistical codes
(统计用区划代码): 6 digits of county (district) code, 3 of town (street), 3 of village
(community). A code of an upper level is padded with zeros to 12 digits:

=========  ===================  ==================
level      example              significant digits
=========  ===================  ==================
district   ``440304000000``     6 (``440304``)
street     ``440304001000``     9 (``440304001``)
community  ``440304001018``     12
grid       ``440304001018001``  12 + grid digits
=========  ===================  ==================

Grid codes are local: they extend the community code by a configurable number of digits
(:class:`CodeScheme`). A unit's own segment is never all zeros (zeros mean "this level is
not used"), and the segments below its level are all zeros.

Codes are text: leading zeros matter and integer codes lose them, so every function here
refuses anything but ``str``. Some sources write street codes with 9 digits (as in the 2023
``modood`` street list); :func:`normalise_code` pads such short forms to the full length.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis._errors import GisError

__all__ = [
    "LEVELS",
    "CodeScheme",
    "DEFAULT_SCHEME",
    "level_of",
    "parent_code",
    "extends",
    "validate_code",
    "normalise_code",
]

LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")
_STATISTICAL_LEVELS = LEVELS[:3]


@dataclass(frozen=True)
class CodeScheme:
    """Digits per level of the territory codes.

    Parameters
    ----------
    district, street, community
        Digits of each statistical level (6, 3, 3: the 12-digit NBS code).
    grid
        Extra digits a grid code appends to its community code (3 gives 15-digit grid codes).
    """

    district: int = 6
    street: int = 3
    community: int = 3
    grid: int = 3

    def __post_init__(self) -> None:
        for level in LEVELS:
            if getattr(self, level) < 1:
                msg = f"CodeScheme.{level} must be at least 1 digit, got {getattr(self, level)}"
                raise GisError(msg)

    def significant(self, level: str) -> int:
        """Number of leading digits that identify a unit of ``level`` (6, 9, 12, 15)."""
        index = _level_index(level)
        return sum(getattr(self, name) for name in LEVELS[: index + 1])

    def length(self, level: str) -> int:
        """Full length of a code of ``level``: 12 for the statistical levels, more for grids."""
        if _level_index(level) < len(_STATISTICAL_LEVELS):
            return self.significant("community")
        return self.significant("grid")

    def segment(self, code: str, level: str) -> str:
        """The digits of ``code`` that belong to ``level`` (e.g. ``'001'`` for a street)."""
        end = self.significant(level)
        return code[end - getattr(self, level) : end]


DEFAULT_SCHEME = CodeScheme()


def _level_index(level: str) -> int:
    if level not in LEVELS:
        msg = f"unknown level {level!r}: expected one of {', '.join(LEVELS)}"
        raise GisError(msg)
    return LEVELS.index(level)


def _require_str(code: object) -> str:
    if not isinstance(code, str):
        msg = (
            f"code {code!r} has type {type(code).__name__}, not str: codes are text "
            "(read the column as string so that leading zeros are kept)"
        )
        raise GisError(msg)
    return code


def validate_code(code: str, level: str, *, scheme: CodeScheme = DEFAULT_SCHEME) -> str:
    """Check that ``code`` is a well-formed full-length code of ``level``.

    Parameters
    ----------
    code
        The code, as text.
    level
        ``'district'``, ``'street'``, ``'community'`` or ``'grid'``.
    scheme
        Digits per level.

    Returns
    -------
    str
        ``code`` unchanged, so the call can be chained.

    Raises
    ------
    GisError
        If the code is not text, has the wrong length, contains non-digits, has an
        all-zero segment at or above its level, or non-zero digits below its level.
    """
    _require_str(code)
    index = _level_index(level)
    length = scheme.length(level)
    if len(code) != length:
        hint = ""
        if len(code) == scheme.significant(level) and len(code) < length:
            hint = " (a short form: pad it with normalise_code)"
        msg = f"{level} code {code!r} has {len(code)} characters, expected {length}{hint}"
        raise GisError(msg)
    if not code.isascii() or not code.isdigit():
        msg = f"{level} code {code!r} contains characters other than the digits 0-9"
        raise GisError(msg)
    county = code[: scheme.district]
    if county[:2] == "00" or county[-2:] == "00":
        msg = (
            f"{level} code {code!r} starts with {county!r}, which is not a county-level "
            "district code (province digits or the last two digits are 00)"
        )
        raise GisError(msg)
    for name in LEVELS[1 : index + 1]:
        if set(scheme.segment(code, name)) == {"0"}:
            msg = f"{level} code {code!r} has an all-zero {name} segment"
            raise GisError(msg)
    rest = code[scheme.significant(level) :]
    if rest.strip("0"):
        msg = (
            f"{level} code {code!r} has non-zero digits {rest!r} after its first "
            f"{scheme.significant(level)} digits: it is not a {level} code"
        )
        raise GisError(msg)
    return code


def level_of(code: str, *, scheme: CodeScheme = DEFAULT_SCHEME) -> str:
    """The level of a full-length code, read from its length and its trailing zeros.

    Raises
    ------
    GisError
        If the code fits no level (see :func:`validate_code` for the rules).
    """
    _require_str(code)
    if len(code) == scheme.length("grid"):
        level = "grid"
    elif len(code) == scheme.length("community"):
        # The deepest level with a non-zero segment; validate_code then checks the others.
        used = [name for name in _STATISTICAL_LEVELS if set(scheme.segment(code, name)) != {"0"}]
        level = used[-1] if used else "district"
    else:
        lengths = sorted({scheme.length(name) for name in LEVELS})
        msg = (
            f"code {code!r} has {len(code)} characters; full codes have "
            f"{' or '.join(map(str, lengths))} (pad short forms with normalise_code)"
        )
        raise GisError(msg)
    validate_code(code, level, scheme=scheme)
    return level


def parent_code(code: str, level: str | None = None, *, scheme: CodeScheme = DEFAULT_SCHEME) -> str:
    """The code of the unit of ``level`` that contains ``code``.

    Parameters
    ----------
    code
        A full-length code of any level.
    level
        The ancestor level wanted; by default the level just above the code's own.
    scheme
        Digits per level.

    Examples
    --------
    >>> parent_code("440304001018")
    '440304001000'
    >>> parent_code("440304001018001", "district")
    '440304000000'
    """
    own = level_of(code, scheme=scheme)
    own_index = LEVELS.index(own)
    if level is None:
        if own_index == 0:
            msg = f"district code {code!r} has no parent level in the code scheme"
            raise GisError(msg)
        level = LEVELS[own_index - 1]
    if _level_index(level) >= own_index:
        msg = f"{level} is not above the level of {own} code {code!r}"
        raise GisError(msg)
    prefix = code[: scheme.significant(level)]
    return prefix.ljust(scheme.length(level), "0")


def extends(
    child_code: str, parent_code: str, child_level: str, *, scheme: CodeScheme = DEFAULT_SCHEME
) -> bool:
    """Whether ``child_code`` is a code of ``child_level`` directly under ``parent_code``.

    True when both are well-formed full-length codes of their levels, the significant
    prefix of the parent is the prefix of the child and the child's own segment is
    non-zero. Malformed codes give False; :func:`validate_code` says what is wrong.
    """
    index = _level_index(child_level)
    if index == 0:
        msg = "a district code has no parent level in the code scheme"
        raise GisError(msg)
    parent_level = LEVELS[index - 1]
    try:
        validate_code(child_code, child_level, scheme=scheme)
        validate_code(parent_code, parent_level, scheme=scheme)
    except GisError:
        return False
    significant = scheme.significant(parent_level)
    return child_code[:significant] == parent_code[:significant]


def normalise_code(code: str, level: str, *, scheme: CodeScheme = DEFAULT_SCHEME) -> str:
    """Pad a short-form code to its full length and validate it.

    Accepts the significant digits only (``'440304001'`` for a street, ``'440304'`` for a
    district) or the full code; surrounding whitespace is dropped.

    Examples
    --------
    >>> normalise_code("440304001", "street")
    '440304001000'
    """
    code = _require_str(code).strip()
    if len(code) == scheme.significant(level):
        code = code.ljust(scheme.length(level), "0")
    return validate_code(code, level, scheme=scheme)
