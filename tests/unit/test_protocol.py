"""Wire protocol v1: envelopes and results round-trip, every rejection is a ProtocolError with a
reason (it becomes the dead-letter header), AMQP properties, and the worker's pipe frames."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rabbitrun import protocol
from rabbitrun.errors import (
    DecodeError,
    InvalidEnvelope,
    ProtocolError,
    UnsupportedVersion,
)
from rabbitrun.keys import TaskInstanceKey
from rabbitrun.names import APP_ID, RESULT_MESSAGE_TYPE, TASK_MESSAGE_TYPE
from rabbitrun.states import OutcomeKind, TaskState

AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
KEY = TaskInstanceKey("etl", "extract", "manual__2026-03-04", -1, 1)


def _envelope(**changes: Any) -> protocol.TaskEnvelope:
    values: dict[str, Any] = {
        "id": "a" * 32,
        "key": KEY,
        "dag_file": "etl/daily.py",
        "queue": "default",
        "priority": 3,
        "execution_timeout_s": 30.0,
        "enqueued_at": AT,
    }
    values.update(changes)
    return protocol.TaskEnvelope(**values)


def _result(**changes: Any) -> protocol.TaskResult:
    values: dict[str, Any] = {
        "envelope_id": "a" * 32,
        "key": KEY,
        "state": "success",
        "exit_code": 0,
        "hostname": "w1@host",
        "started_at": AT,
        "ended_at": AT + timedelta(seconds=2),
        "error": "",
    }
    values.update(changes)
    return protocol.TaskResult(**values)


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


GOOD_ENVELOPE = _envelope().to_wire()
GOOD_RESULT = _result().to_wire()


def _rejected(decode: Any, body: bytes, kind: type[ProtocolError] = ProtocolError) -> ProtocolError:
    with pytest.raises(kind) as info:
        decode(body)
    assert isinstance(info.value, ProtocolError)
    assert info.value.reason, "the reason becomes the dead-letter header and must not be empty"
    return info.value


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [
        _envelope(),
        _envelope(execution_timeout_s=None),
        _envelope(key=TaskInstanceKey("etl", "fan_out", "r1", map_index=7, try_number=3)),
        _envelope(priority=-5),
        _envelope(priority=10_000),
        _envelope(execution_timeout_s=0.25),
        _envelope(dag_file="@examples/example_etl.py", queue="high_priority"),
    ],
    ids=[
        "full",
        "no_timeout",
        "mapped_third_try",
        "negative_priority",
        "huge_priority",
        "fractional_timeout",
        "example_dag",
    ],
)
def test_envelope_survives_encode_then_decode_unchanged(envelope: protocol.TaskEnvelope) -> None:
    assert protocol.decode_envelope(protocol.encode_envelope(envelope)) == envelope


def test_integer_timeout_on_the_wire_decodes_as_float_seconds() -> None:
    decoded = protocol.decode_envelope(_pack({**GOOD_ENVELOPE, "execution_timeout_s": 5}))
    assert decoded.execution_timeout_s == 5.0 and isinstance(decoded.execution_timeout_s, float)


def test_missing_execution_timeout_means_no_time_limit() -> None:
    wire = dict(GOOD_ENVELOPE)
    del wire["execution_timeout_s"]
    assert protocol.decode_envelope(_pack(wire)).execution_timeout_s is None


def test_retry_delay_survives_the_wire_and_is_zero_from_older_senders() -> None:
    assert protocol.decode_envelope(protocol.encode_envelope(_envelope(retry_delay_s=2.5))).retry_delay_s == 2.5
    wire = dict(GOOD_ENVELOPE)
    del wire["retry_delay_s"]
    assert protocol.decode_envelope(_pack(wire)).retry_delay_s == 0.0


def test_xcom_pull_from_survives_the_wire_and_is_empty_from_older_senders() -> None:
    envelope = _envelope(xcom_pull_from=("upstream_dag", "*"))
    assert protocol.decode_envelope(protocol.encode_envelope(envelope)).xcom_pull_from == ("upstream_dag", "*")
    wire = dict(GOOD_ENVELOPE)
    wire.pop("xcom_pull_from", None)
    assert protocol.decode_envelope(_pack(wire)).xcom_pull_from == ()


#: a finish frame as task processes sent it before skip lists
OLDER_FINISH = {
    "v": 1,
    "k": "finish",
    "state": "success",
    "started_at": 1.0,
    "ended_at": 2.0,
    "reason": "",
    "error": "",
    "next_retry_at": None,
    "value": None,
}


def test_may_skip_survives_the_wire_and_is_empty_from_older_senders() -> None:
    envelope = _envelope(may_skip=("left", "right"))
    assert protocol.decode_envelope(protocol.encode_envelope(envelope)).may_skip == ("left", "right")
    wire = dict(GOOD_ENVELOPE)
    wire.pop("may_skip", None)
    assert protocol.decode_envelope(_pack(wire)).may_skip == ()


def test_finish_frame_from_an_older_task_process_skips_nothing() -> None:
    (decoded,) = protocol.split_channel_frames(_channel(OLDER_FINISH))
    assert isinstance(decoded, protocol.FinishFrame) and decoded.skip == ()


@pytest.mark.parametrize("value", ["left", [1], None])
def test_bad_may_skip_is_rejected_naming_it(value: object) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "may_skip": value}), InvalidEnvelope)
    assert "'may_skip'" in err.reason


@pytest.mark.parametrize("value", ["upstream_dag", [1], None])
def test_bad_xcom_pull_from_is_rejected_naming_it(value: object) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "xcom_pull_from": value}), InvalidEnvelope)
    assert "'xcom_pull_from'" in err.reason


@pytest.mark.parametrize("delay", [-1, "5", True])
def test_bad_retry_delay_is_rejected(delay: object) -> None:
    _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "retry_delay_s": delay}), InvalidEnvelope)


def test_enqueued_at_decodes_as_aware_utc_datetime() -> None:
    decoded = protocol.decode_envelope(protocol.encode_envelope(_envelope()))
    assert decoded.enqueued_at.tzinfo is not None and decoded.enqueued_at.utcoffset() == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(
    envelope_id=st.text(min_size=1, max_size=250),
    map_index=st.integers(min_value=-1, max_value=10_000),
    try_number=st.integers(min_value=1, max_value=1_000),
    priority=st.integers(min_value=-(2**31), max_value=2**31),
    timeout=st.none() | st.floats(min_value=0.001, max_value=1e9),
    enqueued_at=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_any_valid_envelope_round_trips(
    envelope_id: str, map_index: int, try_number: int, priority: int, timeout: float | None, enqueued_at: datetime
) -> None:
    envelope = _envelope(
        id=envelope_id,
        key=TaskInstanceKey("d", "t", "r", map_index, try_number),
        priority=priority,
        execution_timeout_s=timeout,
        enqueued_at=enqueued_at,
    )
    assert protocol.decode_envelope(protocol.encode_envelope(envelope)) == envelope


@pytest.mark.parametrize(
    "result",
    [
        _result(),
        _result(exit_code=None, started_at=None, ended_at=None),
        _result(state="failed", exit_code=1, error="ZeroDivisionError: division by zero"),
        _result(key=TaskInstanceKey("etl", "fan_out", "r1", map_index=2, try_number=4), state="up_for_retry"),
        _result(exit_code=-9, state="failed", error="killed by SIGKILL"),
    ],
    ids=["success", "never_started", "failed_with_error", "mapped_retry", "killed"],
)
def test_result_survives_encode_then_decode_unchanged(result: protocol.TaskResult) -> None:
    assert protocol.decode_result(protocol.encode_result(result)) == result


def test_result_error_is_cut_to_the_short_limit_on_the_wire() -> None:
    decoded = protocol.decode_result(protocol.encode_result(_result(error="x" * (protocol.MAX_ERROR_CHARS + 50))))
    assert decoded.error == "x" * protocol.MAX_ERROR_CHARS


# --- rejections: not a map, not msgpack, too big, wrong version -------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",
        b"\x92\x01",
        b"\x81\xa1v",
        b"\xde\x00\x01",
        b"not msgpack at all{",
        _pack({"v": 1})[:-1] + b"\xc1\xc1",
    ],
    ids=["empty", "reserved_byte", "truncated_array", "truncated_map", "truncated_map16", "text", "trailing_garbage"],
)
@pytest.mark.parametrize("decode", [protocol.decode_envelope, protocol.decode_result], ids=["envelope", "result"])
def test_garbage_bytes_are_rejected_as_not_msgpack(decode: Any, body: bytes) -> None:
    err = _rejected(decode, body, ProtocolError)
    assert isinstance(err, DecodeError | UnsupportedVersion)


@pytest.mark.parametrize(
    "obj",
    [[1, 2, 3], "hello", 42, None, True, 1.5, b"bytes"],
    ids=["array", "string", "int", "nil", "bool", "float", "bin"],
)
def test_msgpack_that_is_not_a_map_is_rejected_naming_the_type(obj: object) -> None:
    err = _rejected(protocol.decode_envelope, _pack(obj), DecodeError)
    assert "expected a map" in err.reason


def test_map_with_non_string_keys_is_rejected_as_not_msgpack() -> None:
    _rejected(protocol.decode_envelope, _pack({1: "x", "v": 1}), DecodeError)


def test_oversized_body_is_refused_before_decoding_with_its_size_in_the_reason() -> None:
    body = _pack({**GOOD_ENVELOPE, "padding": "x" * protocol.MAX_MESSAGE_BYTES})
    err = _rejected(protocol.decode_envelope, body, DecodeError)
    assert str(len(body)) in err.reason and str(protocol.MAX_MESSAGE_BYTES) in err.reason


def test_body_exactly_at_the_size_limit_is_still_decoded() -> None:
    base = _pack({**GOOD_ENVELOPE, "padding": ""})
    pad = protocol.MAX_MESSAGE_BYTES - len(base)
    body = _pack({**GOOD_ENVELOPE, "padding": "x" * pad})
    # the str header grows from 1 to 5 bytes once the string is long: trim to land exactly on the limit
    body = _pack({**GOOD_ENVELOPE, "padding": "x" * (pad - (len(body) - protocol.MAX_MESSAGE_BYTES))})
    assert len(body) == protocol.MAX_MESSAGE_BYTES
    assert protocol.decode_envelope(body).id == GOOD_ENVELOPE["id"]


@pytest.mark.parametrize(
    "version",
    [99, 0, 2, "1", True, 1.5, 1.0, None, [1]],
    ids=["99", "0", "2", "string_1", "true", "float", "float_1", "nil", "list"],
)
@pytest.mark.parametrize(
    "decode,good",
    [(protocol.decode_envelope, GOOD_ENVELOPE), (protocol.decode_result, GOOD_RESULT)],
    ids=["envelope", "result"],
)
def test_unknown_protocol_version_is_rejected_naming_the_version(
    decode: Any, good: dict[str, Any], version: object
) -> None:
    err = _rejected(decode, _pack({**good, "v": version}), UnsupportedVersion)
    assert "version" in err.reason and repr(version) in err.reason
    assert err.version == version  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "decode,good",
    [(protocol.decode_envelope, GOOD_ENVELOPE), (protocol.decode_result, GOOD_RESULT)],
    ids=["envelope", "result"],
)
def test_missing_version_is_rejected_as_unsupported(decode: Any, good: dict[str, Any]) -> None:
    wire = {k: v for k, v in good.items() if k != "v"}
    _rejected(decode, _pack(wire), UnsupportedVersion)


# --- rejections: fields ---------------------------------------------------------------

ENVELOPE_REQUIRED = [
    "id",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "dag_file",
    "queue",
    "priority",
    "enqueued_at",
]
RESULT_REQUIRED = [
    "envelope_id",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "state",
    "hostname",
    "error",
]


@pytest.mark.parametrize("name", ENVELOPE_REQUIRED)
def test_envelope_missing_a_required_field_is_rejected_naming_it(name: str) -> None:
    wire = {k: v for k, v in GOOD_ENVELOPE.items() if k != name}
    err = _rejected(protocol.decode_envelope, _pack(wire), InvalidEnvelope)
    assert f"missing field {name!r}" in err.reason


@pytest.mark.parametrize("name", RESULT_REQUIRED)
def test_result_missing_a_required_field_is_rejected_naming_it(name: str) -> None:
    wire = {k: v for k, v in GOOD_RESULT.items() if k != name}
    err = _rejected(protocol.decode_result, _pack(wire), InvalidEnvelope)
    assert f"missing field {name!r}" in err.reason


@pytest.mark.parametrize(
    "name,value",
    [
        ("try_number", True),
        ("map_index", True),
        ("priority", False),
        ("map_index", "1"),
        ("try_number", 1.0),
        ("priority", "high"),
        ("enqueued_at", True),
        ("enqueued_at", "2026-01-01"),
        ("execution_timeout_s", True),
        ("execution_timeout_s", "30"),
        ("id", 5),
        ("dag_id", None),
        ("task_id", b"extract"),
        ("run_id", ["r"]),
        ("dag_file", 7),
        ("queue", {"name": "default"}),
        ("enqueued_at", None),
    ],
)
def test_envelope_field_of_the_wrong_type_is_rejected_naming_the_field(name: str, value: object) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, name: value}), InvalidEnvelope)
    assert repr(name) in err.reason


@pytest.mark.parametrize(
    "name,value",
    [
        ("try_number", True),
        ("map_index", "0"),
        ("exit_code", True),
        ("exit_code", "0"),
        ("started_at", "yesterday"),
        ("ended_at", True),
        ("hostname", None),
        ("error", None),
        ("state", 3),
        ("envelope_id", 1),
    ],
)
def test_result_field_of_the_wrong_type_is_rejected_naming_the_field(name: str, value: object) -> None:
    err = _rejected(protocol.decode_result, _pack({**GOOD_RESULT, name: value}), InvalidEnvelope)
    assert repr(name) in err.reason


@pytest.mark.parametrize("try_number", [0, -1])
def test_try_number_below_one_is_rejected(try_number: int) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "try_number": try_number}), InvalidEnvelope)
    assert "try_number" in err.reason and "at least 1" in err.reason


@pytest.mark.parametrize("map_index", [-2, -100])
def test_map_index_below_minus_one_is_rejected(map_index: int) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "map_index": map_index}), InvalidEnvelope)
    assert "map_index" in err.reason


@pytest.mark.parametrize("name", ["id", "dag_id", "task_id", "run_id", "queue"])
def test_empty_identifier_is_rejected(name: str) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, name: ""}), InvalidEnvelope)
    assert repr(name) in err.reason and "non-empty" in err.reason


@pytest.mark.parametrize("name", ["id", "dag_id", "task_id", "run_id", "queue"])
def test_identifier_longer_than_250_characters_is_rejected(name: str) -> None:
    _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, name: "x" * 251}), InvalidEnvelope)


@pytest.mark.parametrize("name", ["envelope_id", "dag_id", "state"])
def test_result_with_empty_identifier_is_rejected(name: str) -> None:
    _rejected(protocol.decode_result, _pack({**GOOD_RESULT, name: ""}), InvalidEnvelope)


@pytest.mark.parametrize("timeout", [0, -1, -0.5, 0.0])
def test_non_positive_execution_timeout_is_rejected(timeout: float) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "execution_timeout_s": timeout}), InvalidEnvelope)
    assert "positive" in err.reason


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_execution_timeout_is_rejected(timeout: float) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "execution_timeout_s": timeout}), InvalidEnvelope)
    assert "execution_timeout_s" in err.reason


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, math.nan, 1e300, -1e300], ids=["inf", "-inf", "nan", "huge", "-huge"]
)
def test_enqueued_at_out_of_range_is_rejected(value: float) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "enqueued_at": value}), InvalidEnvelope)
    assert "enqueued_at" in err.reason


# --- DAG file paths -----------------------------------------------------------------------

UNSAFE_PATHS = [
    "../../etc/passwd",
    "/etc/passwd",
    "a/../../x.py",
    "dags\\x.py",
    "x.txt",
    "x\x00.py",
    "@examples/../../x.py",
    "",
    "..",
    "../x.py",
    "/abs/dag.py",
    "@examples//etc/x.py",
    "etl/daily.pyc",
    "a/b/../../../x.py",
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_dag_file_outside_the_dags_folder_is_rejected_naming_the_path(path: str) -> None:
    err = _rejected(protocol.decode_envelope, _pack({**GOOD_ENVELOPE, "dag_file": path}), InvalidEnvelope)
    assert repr(path) in err.reason
    with pytest.raises(InvalidEnvelope):
        protocol.check_dag_file(path)


@pytest.mark.parametrize("path", ["etl/daily.py", "@examples/example_etl.py", "x.py", "a/b/c/deep.py"])
def test_dag_file_inside_the_dags_folder_is_accepted(path: str) -> None:
    assert protocol.check_dag_file(path) == path
    assert protocol.decode_envelope(_pack({**GOOD_ENVELOPE, "dag_file": path})).dag_file == path


# --- property: nothing but ProtocolError, ever ---------------------------------------------

FIELD_NAMES = sorted(set(GOOD_ENVELOPE) | set(GOOD_RESULT))
scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.just(""),
    st.just(1),
    st.just("../x.py"),
    st.just("x" * 300),
)
any_values = st.recursive(
    scalar_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=10)


def _only_protocol_errors(decode: Any, body: bytes) -> None:
    try:
        decoded = decode(body)
    except ProtocolError as exc:
        assert exc.reason
    else:
        assert isinstance(decoded, protocol.TaskEnvelope | protocol.TaskResult)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decode_envelope_of_arbitrary_bytes_returns_an_envelope_or_raises_protocol_error(body: bytes) -> None:
    _only_protocol_errors(protocol.decode_envelope, body)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_decode_result_of_arbitrary_bytes_returns_a_result_or_raises_protocol_error(body: bytes) -> None:
    _only_protocol_errors(protocol.decode_result, body)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(keys, any_values, max_size=16))
def test_decode_envelope_of_arbitrary_maps_returns_an_envelope_or_raises_protocol_error(obj: dict[str, Any]) -> None:
    _only_protocol_errors(protocol.decode_envelope, _pack(obj))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(keys, any_values, max_size=16))
def test_decode_result_of_arbitrary_maps_returns_a_result_or_raises_protocol_error(obj: dict[str, Any]) -> None:
    _only_protocol_errors(protocol.decode_result, _pack(obj))


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(st.sampled_from(FIELD_NAMES), any_values, max_size=6),
    st.sets(st.sampled_from(FIELD_NAMES), max_size=3),
)
def test_mostly_valid_messages_with_corrupted_fields_decode_or_raise_protocol_error(
    corrupt: dict[str, Any], dropped: set[str]
) -> None:
    """Start from a good v1 message so the deep validation paths are reached, not just the version check."""
    for decode, good in ((protocol.decode_envelope, GOOD_ENVELOPE), (protocol.decode_result, GOOD_RESULT)):
        wire = {k: v for k, v in {**good, **corrupt, "v": 1}.items() if k not in dropped}
        _only_protocol_errors(decode, _pack(wire))


# --- AMQP properties -----------------------------------------------------------------------


def test_envelope_properties_are_the_ones_the_design_fixes() -> None:
    envelope = _envelope(priority=4)
    props = protocol.envelope_properties(envelope, reply_to="rabbitrun.replies.s1", max_priority=10)
    assert props == {
        "content_type": "application/msgpack",
        "delivery_mode": 2,
        "message_id": envelope.id,
        "correlation_id": envelope.id,
        "reply_to": "rabbitrun.replies.s1",
        "priority": 4,
        "type": TASK_MESSAGE_TYPE,
        "app_id": "rabbitrun",
        "timestamp": AT,
    }
    assert props["type"] == "rabbitrun.task" and APP_ID == "rabbitrun"


@pytest.mark.parametrize(
    "weight,max_priority,expected",
    [(-5, 10, 0), (0, 10, 0), (7, 10, 7), (10, 10, 10), (50, 10, 10), (50, 255, 50), (3, 0, 0)],
)
def test_priority_weight_is_clamped_into_the_queue_priority_range(
    weight: int, max_priority: int, expected: int
) -> None:
    props = protocol.envelope_properties(_envelope(priority=weight), "r", max_priority)
    assert props["priority"] == expected == protocol.amqp_priority(weight, max_priority)


def test_result_properties_correlate_with_the_envelope_id() -> None:
    props = protocol.result_properties(_result(envelope_id="e1"))
    assert props["correlation_id"] == "e1"
    assert props["content_type"] == "application/msgpack" and props["delivery_mode"] == 2
    assert props["type"] == RESULT_MESSAGE_TYPE and props["app_id"] == "rabbitrun"
    assert props["timestamp"].tzinfo is not None


# --- worker pipe frames -------------------------------------------------------------------

STARTED = protocol.StartedFrame("t1", 123)
OUTCOME = protocol.OutcomeFrame("t1", TaskState.SUCCESS, claimed=True, started_at=AT, ended_at=AT, error="")
CLAIM = protocol.ClaimedAttempt(
    max_tries=2,
    queue="default",
    started_at=AT,
    run={"run_id": "r", "conf": {"x": [1, 2]}, "logical_date": AT, "data_interval_end": None, "run_type": "manual"},
)
EXITED = protocol.ExitedFrame("t1", 123, -9)


def test_split_frames_waits_for_a_whole_frame_across_partial_reads() -> None:
    frame = protocol.encode_frame(STARTED)
    buffer = bytearray()
    for cut in (2, 4, len(frame) - 1):  # inside the length prefix, just after it, one byte short
        buffer[:] = frame[:cut]
        assert protocol.split_frames(buffer) == []
        assert bytes(buffer) == frame[:cut], "an incomplete frame stays in the buffer"
    buffer.extend(frame[len(frame) - 1 :])
    assert protocol.split_frames(buffer) == [STARTED]
    assert buffer == bytearray()


def test_split_frames_takes_every_complete_frame_and_keeps_the_partial_tail() -> None:
    third = protocol.encode_frame(EXITED)
    buffer = bytearray(protocol.encode_frame(STARTED) + protocol.encode_frame(OUTCOME) + third[:5])
    assert protocol.split_frames(buffer) == [STARTED, OUTCOME]
    assert bytes(buffer) == third[:5]
    buffer.extend(third[5:])
    assert protocol.split_frames(buffer) == [EXITED]


def test_a_frame_that_does_not_decode_leaves_the_frames_behind_it() -> None:
    """The bad frame raises and is taken off; the good frame after it stays for the next read."""
    bad = msgpack.packb({"v": 1, "k": "no_such_frame"})
    buffer = bytearray(len(bad).to_bytes(4, "big") + bad + protocol.encode_frame(EXITED))
    with pytest.raises(ProtocolError):
        protocol.split_frames(buffer)
    assert protocol.split_frames(buffer) == [EXITED]


def test_split_frames_of_an_empty_buffer_is_empty() -> None:
    assert protocol.split_frames(bytearray()) == []


@pytest.mark.parametrize(
    "frame",
    [
        STARTED,
        OUTCOME,
        EXITED,
        protocol.StopFrame(),
        protocol.OutcomeFrame("t2", OutcomeKind.DB_UNAVAILABLE, error="connection refused"),
        protocol.RunFrame("7", _envelope(key=TaskInstanceKey("d", "t", "r", 3, 2)), CLAIM),
    ],
    ids=lambda frame: type(frame).__name__,
)
def test_every_frame_kind_comes_back_equal(frame: protocol.Frame) -> None:
    assert protocol.split_frames(bytearray(protocol.encode_frame(frame))) == [frame]


def _framed(obj: object) -> bytearray:
    payload = _pack(obj)
    return bytearray(len(payload).to_bytes(4, "big") + payload)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "expected a map"),
        ({"k": "started", "id": "t1", "pid": 1}, "version"),  # no "v"
        ({"v": 1, "k": "refresh"}, "names no worker frame"),
        ({"v": 1, "k": "started", "id": "t1"}, "missing field 'pid'"),
        ({"v": 1, "k": "started", "id": "t1", "pid": "1"}, "'pid' must be int"),
        ({"v": 1, "k": "exited", "id": "", "pid": 1, "status": 0}, "'id' must be a non-empty"),
        ({"v": 1, "k": "outcome", "id": "t", "state": "success", "claimed": 1, "error": ""}, "'claimed' must be"),
    ],
)
def test_a_malformed_frame_is_taken_off_and_raises_its_reason(obj: object, reason: str) -> None:
    buffer = _framed(obj)
    with pytest.raises(ProtocolError, match=reason):
        protocol.split_frames(buffer)
    assert buffer == bytearray(), "the bad frame does not block the ones after it"


def test_frames_are_frozen() -> None:
    with pytest.raises(AttributeError):
        OUTCOME.state = "failed"  # type: ignore[misc]


def test_envelope_in_a_frame_is_validated_like_one_from_the_broker() -> None:
    bad = {**GOOD_ENVELOPE, "dag_file": "../../etc/passwd"}
    with pytest.raises(InvalidEnvelope):
        protocol.split_frames(_framed({"v": 1, "k": "run", "token": "7", "envelope": bad}))


def test_the_claim_in_a_run_frame_keeps_its_dates_as_aware_datetimes() -> None:
    (frame,) = protocol.split_frames(bytearray(protocol.encode_frame(protocol.RunFrame("7", _envelope(), CLAIM))))
    assert isinstance(frame, protocol.RunFrame)
    assert frame.claim.run["logical_date"] == AT and frame.claim.run["logical_date"].tzinfo is not None
    assert frame.claim.run["data_interval_end"] is None and frame.claim.run["conf"] == {"x": [1, 2]}


def test_a_claim_naming_a_date_the_run_lacks_is_refused() -> None:
    wire = protocol.RunFrame("7", _envelope(), CLAIM).to_wire()
    wire["claim"]["dates"] = ["nope"]
    with pytest.raises(InvalidEnvelope, match="names 'nope'"):
        protocol.split_frames(_framed(wire))


# --- the task channel (task process <-> its worker) -----------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        protocol.DataRequest(protocol.DataOp.GET_VARIABLE, {"key": "k"}),
        protocol.DataRequest(protocol.DataOp.SET_VARIABLE, {"key": "k", "value": "v", "description": None}),
        protocol.DataRequest(
            protocol.DataOp.XCOM_ROWS, {"dag_id": "d", "run_id": "r", "task_ids": ["a", "b"], "key": "return_value"}
        ),
        protocol.DataRequest(protocol.DataOp.PUT_XCOM, {"key": "k", "data": b"\x00\x01", "value_type": "json"}),
        protocol.DataRequest(protocol.DataOp.RESCHEDULE_HISTORY, {}),
        protocol.DataReply({"login": "u", "port": 5432}),
        protocol.DataReply(None, "not found", "VariableNotFound"),
        protocol.FinishFrame(TaskState.SUCCESS, AT, AT, value=(b"1", "json")),
        protocol.FinishFrame(TaskState.SUCCESS, AT, AT, skip=("right", "group.task")),
        protocol.FinishFrame(TaskState.UP_FOR_RETRY, AT, AT, reason="ValueError: x", error="x", next_retry_at=AT),
        protocol.FinishReply(True, TaskState.FAILED, "over max_xcom_size"),
        protocol.OutcomeFrame("7", OutcomeKind.REJECTED, error="DAG d not found"),
    ],
    ids=lambda frame: f"{type(frame).__name__}",
)
def test_every_channel_frame_comes_back_equal(frame: protocol.ChannelFrame) -> None:
    assert protocol.split_channel_frames(bytearray(protocol.encode_channel_frame(frame))) == [frame]


def _channel(obj: object) -> bytearray:
    payload = _pack(obj)
    return bytearray(len(payload).to_bytes(4, "big") + payload)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"v": 1, "k": "data", "op": "db.execute", "args": {}}, "names no data operation"),
        ({"v": 1, "k": "data", "op": "variable.get", "args": {}}, "missing field 'key'"),
        ({"v": 1, "k": "data", "op": "variable.get", "args": {"key": 1}}, "'key' must be"),
        ({"v": 1, "k": "data", "op": "xcom.put", "args": {"key": "k", "data": "text", "value_type": "json"}}, "'data'"),
        ({"v": 1, "k": "finish", "state": "success", "started_at": 1.0, "ended_at": 2.0, "value": [1]}, "'value'"),
        ({"v": 1, "k": "run", "token": "7"}, "names no task channel frame"),
        ({**OLDER_FINISH, "skip": "b"}, "'skip'"),
        ({**OLDER_FINISH, "skip": [1]}, "'skip'"),
    ],
)
def test_a_malformed_channel_frame_raises_its_reason(obj: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.split_channel_frames(_channel(obj))


def test_a_channel_frame_longer_than_the_limit_is_refused_before_it_is_read() -> None:
    buffer = bytearray((protocol.CHANNEL_MAX_BYTES + 1).to_bytes(4, "big") + b"x")
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.split_channel_frames(buffer)


def test_a_data_request_keeps_only_the_arguments_its_operation_names() -> None:
    obj = {"v": 1, "k": "data", "op": "variable.get", "args": {"key": "k", "sql": "DROP TABLE variable"}}
    (frame,) = protocol.split_channel_frames(_channel(obj))
    assert isinstance(frame, protocol.DataRequest) and dict(frame.args) == {"key": "k"}


# --- control requests and replies -----------------------------------------------------------


def test_control_request_round_trips_with_its_arguments() -> None:
    request = protocol.ControlRequest.of("read_log", {"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 2})
    assert request.key == TaskInstanceKey("d", "t", "r", -1, 2)
    assert protocol.decode_control_request(protocol.encode_message(request)) == request
    grow = protocol.ControlRequest.of("pool_grow", {"n": 3})
    assert protocol.decode_control_request(protocol.encode_message(grow)) == grow


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"n": "3"}, "'n' must be int"),
        ({"queue": 7}, "'queue' must be str"),
        ({"dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 0}, "'try_number' must be at least 1"),
        ({"dag_id": "d", "task_id": "t"}, "missing field"),
    ],
)
def test_control_request_with_a_wrong_argument_is_refused_before_it_is_sent(args: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEnvelope, match=reason):
        protocol.ControlRequest.of("anything", args)


def test_control_request_without_a_command_is_refused() -> None:
    with pytest.raises(InvalidEnvelope, match="'kind'"):
        protocol.decode_control_request(_pack({"v": 1, "args": {}}))


def test_control_reply_round_trips_ok_and_error() -> None:
    ok = protocol.ControlReply("w1", "stats", ok=True, data={"busy": 1, "processes": [12, 13]})
    failed = protocol.ControlReply("w1", "nope", ok=False, error="ValueError: unknown command 'nope'")
    for reply in (ok, failed):
        assert protocol.decode_control_reply(protocol.encode_message(reply)) == reply


def test_a_control_request_is_not_a_reply() -> None:
    with pytest.raises(InvalidEnvelope, match="control reply"):
        protocol.decode_control_reply(protocol.encode_message(protocol.ControlRequest("ping")))


# --- events ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        protocol.Heartbeat("w1", 1, 2, ("default", "etl"), 4242),
        protocol.WorkerOffline("w1"),
        protocol.TaskReceived("w1", KEY, "e" * 32, redelivered=True),
        protocol.TaskStarted("w1", KEY, "e" * 32),
        protocol.TaskEnded("w1", KEY, "e" * 32, TaskState.UP_FOR_RETRY, "boom"),
        protocol.TaskRevoked("w1", KEY, "e" * 32, "worker shutting down"),
        protocol.TaskTimedOut("w1", KEY, "e" * 32, "soft"),
        protocol.LogLines("w1", KEY, 120, ("line one", "line two")),
    ],
    ids=lambda event: type(event).__name__,
)
def test_every_event_comes_back_equal(event: protocol.Event) -> None:
    assert protocol.decode_event(protocol.encode_message(event)) == event


def test_a_task_end_event_is_named_for_its_state() -> None:
    wire = protocol.TaskEnded("w1", KEY, "e1", TaskState.SUCCESS).to_wire()
    assert wire["kind"] == "succeeded" and wire["state"] == "success"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"v": 1, "kind": "gossip", "hostname": "w1"}, "names no event"),
        ({"v": 1, "kind": "heartbeat", "hostname": "w1", "active": 1, "concurrency": 2, "pid": 1}, "'queues'"),
        (
            {"v": 1, "kind": "heartbeat", "hostname": "w1", "active": 1, "concurrency": 2, "pid": 1, "queues": [1]},
            "list of str",
        ),
        (
            {**protocol.TaskEnded("w1", KEY, "e1", TaskState.SUCCESS).to_wire(), "kind": "failed"},
            "does not end in a 'failed' event",
        ),
        ({**protocol.TaskStarted("w1", KEY, "e1").to_wire(), "try_number": 0}, "'try_number'"),
        ({"kind": "worker_offline", "hostname": "w1"}, "version"),
    ],
)
def test_a_malformed_event_is_a_protocol_error(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode_event(_pack(obj))
