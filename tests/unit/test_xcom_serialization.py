"""XCom values: type-tagged JSON, the pickling gate and the file backend's references: no DB."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rabbitrun.errors import ConfigError, XComError
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.models.xcom import REF, DatabaseXComBackend, deserialize, load_backend, serialize
from rabbitrun.models.xcom_backends import FileXComBackend
from rabbitrun.settings import load_settings

TI = TaskInstanceKey("d", "t", "manual__2026/01", -1, 1)


@pytest.mark.parametrize(
    "value",
    [
        (1, "a", (2, 3)),
        {1, 2, 3},
        frozenset({"x"}),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        date(2026, 1, 2),
        timedelta(hours=1, microseconds=5),
        b"\x00\xffbytes",
        {"nested": [(1, {"when": date(2026, 1, 1)})], "n": None, "f": 1.5},
        {"__rabbitrun_type__": "tuple", "v": [1]},  # a user dict that looks like a tag stays a dict
    ],
)
def test_json_values_keep_their_python_types(value: Any) -> None:
    data, value_type = serialize(value, allow_pickle=False)
    assert value_type == "json"
    back = deserialize(data, value_type, allow_pickle=False)
    assert back == value and type(back) is (set if isinstance(value, frozenset) else type(value))


def test_non_json_values_need_pickling_enabled_both_ways() -> None:
    with pytest.raises(XComError, match="ENABLE_XCOM_PICKLING"):
        serialize(object(), allow_pickle=False)
    with pytest.raises(XComError, match="not JSON-serialisable"):
        serialize(float("nan"), allow_pickle=False)
    data, value_type = serialize(complex(1, 2), allow_pickle=True)
    assert value_type == "pickle" and deserialize(data, value_type, allow_pickle=True) == complex(1, 2)
    with pytest.raises(XComError, match="pickling is disabled"):
        deserialize(data, value_type, allow_pickle=False)


def test_unknown_tags_and_types_are_errors_not_guesses() -> None:
    with pytest.raises(XComError, match="unknown XCom type tag 'frob'"):
        deserialize(json.dumps({"__rabbitrun_type__": "frob", "v": 1}).encode(), "json", allow_pickle=False)
    with pytest.raises(XComError, match="unknown XCom value type 'yaml'"):
        deserialize(b"x", "yaml", allow_pickle=False)


def test_backend_is_loaded_from_its_dotted_path(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, env={})
    assert isinstance(load_backend("", settings), DatabaseXComBackend)
    assert isinstance(load_backend("rabbitrun.models.xcom_backends.FileXComBackend", settings), FileXComBackend)
    with pytest.raises(ConfigError, match="xcom_backend 'no.such.Backend' cannot be imported"):
        load_backend("no.such.Backend", settings)


def test_file_backend_keeps_small_values_inline_and_large_ones_as_file_references(tmp_path: Path) -> None:
    backend = FileXComBackend(load_settings(home=tmp_path, env={}))
    small, small_type = backend.store((1, 2), key="k", ti=TI)
    assert small_type == "json" and backend.load(small, small_type) == (1, 2)
    big_value = {"rows": list(range(2000)), "at": datetime(2026, 1, 1, tzinfo=UTC)}
    ref, ref_type = backend.store(big_value, key="k", ti=TI)
    assert ref_type == REF and len(ref) < 300
    path = Path(json.loads(ref)["path"])
    assert path.is_relative_to(tmp_path / "xcom_files") and path.parent.parent.name == "manual__2026_01"
    assert backend.load(ref, ref_type) == big_value
    path.unlink()
    with pytest.raises(XComError, match="is missing"):
        backend.load(ref, ref_type)
