"""Administrative codes: levels, parents, prefixes, validation, short forms, real NBS codes."""

from __future__ import annotations

import pandas as pd
import pytest

from gis._errors import GisError
from gis.codes import (
    CodeScheme,
    extends,
    level_of,
    normalise_code,
    parent_code,
    validate_code,
)


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("440304000000", "district"),
        ("440304001000", "street"),
        ("440304001018", "community"),
        ("440304001018001", "grid"),
    ],
)
def test_level_of(code, level):
    assert level_of(code) == level
    assert validate_code(code, level) == code


def test_parent_code_default_and_named_level():
    assert parent_code("440304001018") == "440304001000"
    assert parent_code("440304001000") == "440304000000"
    assert parent_code("440304001018007") == "440304001018"
    assert parent_code("440304001018007", "street") == "440304001000"
    assert parent_code("440304001018007", "district") == "440304000000"


def test_parent_code_refuses_levels_not_above():
    with pytest.raises(GisError, match="no parent level"):
        parent_code("440304000000")
    with pytest.raises(GisError, match="not above"):
        parent_code("440304001000", "community")


def test_extends():
    assert extends("440304001018", "440304001000", "community")
    assert extends("440304001018001", "440304001018", "grid")
    assert not extends("440304002018", "440304001000", "community")  # another street
    assert not extends("440305001018", "440304001000", "community")  # another district
    assert not extends("440304001000", "440304001000", "community")  # own segment is zero
    assert not extends("440304001018", "440304001", "community")  # short parent
    assert not extends("440304001018", "440304001018", "community")  # parent of wrong level
    with pytest.raises(GisError, match="district"):
        extends("440304000000", "440300000000", "district")


@pytest.mark.parametrize(
    ("code", "level", "reason"),
    [
        ("44030400100", "street", "11 characters, expected 12"),
        ("440304001", "street", "short form"),
        ("44030400101x", "community", "other than the digits"),
        ("440304000018", "community", "all-zero street segment"),
        ("440304001000", "community", "all-zero community segment"),
        ("440304001018", "street", "non-zero digits '018'"),
        ("440300000000", "district", "not a county-level"),
        ("440304001018000", "grid", "all-zero grid segment"),
    ],
)
def test_validate_code_says_why(code, level, reason):
    with pytest.raises(GisError, match=reason):
        validate_code(code, level)


def test_codes_must_be_text():
    with pytest.raises(GisError, match="not str"):
        validate_code(440304001018, "community")  # type: ignore[arg-type]
    with pytest.raises(GisError, match="not str"):
        level_of(440304000000)  # type: ignore[arg-type]


def test_unknown_level():
    with pytest.raises(GisError, match="unknown level"):
        validate_code("440304001000", "town")


def test_normalise_code():
    assert normalise_code("440304001", "street") == "440304001000"
    assert normalise_code(" 440304 ", "district") == "440304000000"
    assert normalise_code("440304001000", "street") == "440304001000"
    with pytest.raises(GisError, match="all-zero street"):
        normalise_code("440304000", "street")


def test_custom_grid_digits():
    scheme = CodeScheme(grid=4)
    assert scheme.length("grid") == 16
    assert scheme.length("street") == 12
    assert level_of("4403040010180012", scheme=scheme) == "grid"
    assert extends("4403040010180012", "440304001018", "grid", scheme=scheme)
    with pytest.raises(GisError, match="expected 16"):
        validate_code("440304001018001", "grid", scheme=scheme)
    with pytest.raises(GisError, match="at least 1"):
        CodeScheme(grid=0)


@pytest.fixture(scope="module")
def hierarchy(realdata) -> pd.DataFrame:
    path = realdata / "china_admin_vonng_adcode" / "admin_hierarchy_5level_gcj02.csv"
    return pd.read_csv(path, dtype=str)


def test_dongcheng_communities_extend_their_streets(hierarchy):
    dongcheng = hierarchy[hierarchy["code"].str.startswith("110101")]
    streets = dongcheng[dongcheng["rank"] == "4"]
    communities = dongcheng[dongcheng["rank"] == "5"]
    assert len(streets) == 17 and len(communities) == 182
    street_codes = set(streets["code"])
    for code in streets["code"]:
        assert level_of(code) == "street"
        assert extends(code, "110101000000", "street")
    for code, parent in zip(communities["code"], communities["parent"], strict=True):
        assert parent in street_codes
        assert level_of(code) == "community"
        assert extends(code, parent, "community")
        assert parent_code(code) == parent


def test_all_sample_districts_are_consistent(hierarchy):
    # Every row of the 13 districts: the code is valid for its rank and extends its parent.
    levels = {"3": "district", "4": "street", "5": "community"}
    columns = (hierarchy["code"], hierarchy["parent"], hierarchy["rank"])
    for code, parent, rank in zip(*columns, strict=True):
        assert level_of(code) == levels[rank]
        if rank != "3":
            assert extends(code, parent, levels[rank]), (code, parent)


def test_nine_digit_street_codes_normalise(realdata):
    path = (
        realdata / "china_admin_vonng_adcode" / "streets_2023_modood_shenzhen_xiamen_dongcheng.csv"
    )
    streets = pd.read_csv(path, dtype=str)
    assert (streets["code"].str.len() == 9).all()
    for code, area in zip(streets["code"], streets["areaCode"], strict=True):
        full = normalise_code(code, "street")
        assert level_of(full) == "street"
        assert parent_code(full) == area + "000000"
