"""Catalog rows are built without validation, and are exactly the rows validation builds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowc.model import catalog
from flowc.model.catalog import InstanceType

#: Names the grammar makes rows for although the catalog does not list them.
_UNLISTED = ["16xa100", "h100x3", "b200:16", "32xh200"]


def _validated(row: InstanceType) -> InstanceType:
    return InstanceType.model_validate({name: getattr(row, name) for name in row.model_fields_set})


def _same(row: InstanceType, validated: InstanceType) -> None:
    assert row == validated
    assert repr(row) == repr(validated)
    assert hash(row) == hash(validated)
    assert row.model_fields_set == validated.model_fields_set
    assert row.model_dump() == validated.model_dump()
    assert row.model_dump_json() == validated.model_dump_json()
    assert {name: type(value) for name, value in row} == {name: type(value) for name, value in validated}


@pytest.mark.parametrize("name", catalog.names())
def test_every_listed_row_is_the_validated_row(name: str) -> None:
    row = catalog.lookup(name)
    assert row is not None and row.known
    _same(row, _validated(row))


def test_a_row_built_from_the_shipped_data_is_the_validated_row() -> None:
    for listed in catalog._data()["instance_types"]:
        row = catalog.lookup(listed["name"])
        validated = InstanceType(name=listed["name"], gpu=listed["gpu"], gpu_count=listed["gpu_count"],
                                 gpu_memory_gb=listed["gpu_memory_gb"], intranode=listed["intranode"],
                                 internode=listed["internode"], internode_gbps=listed["internode_gbps"],
                                 gpu_product=catalog._data()["gpu_products"].get(listed["gpu"]))
        _same(row, validated)


def test_an_integer_bandwidth_becomes_the_float_validation_makes_of_it() -> None:
    rows = [catalog.lookup(listed["name"]) for listed in catalog._data()["instance_types"]
            if isinstance(listed["internode_gbps"], int)]
    assert rows, "the shipped data must hold an integer bandwidth for this test to mean anything"
    assert all(type(row.internode_gbps) is float for row in rows)


@pytest.mark.parametrize("name", _UNLISTED)
def test_a_row_the_grammar_makes_is_the_validated_row(name: str) -> None:
    row = catalog.lookup(name)
    assert row is not None and not row.known
    _same(row, _validated(row))


def test_looking_rows_up_builds_no_validator() -> None:
    probe = ("import sys\nfrom flowc.model import catalog\n"
             "rows = [catalog.lookup(n) for n in catalog.names() + ['16xa100']]\n"
             "print(catalog.InstanceType.__pydantic_complete__, 'pydantic.plugin._loader' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]
