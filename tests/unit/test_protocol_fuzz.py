"""Property tests: whatever arrives on a task queue, decoding either yields a valid envelope
or raises the protocol's own error (whose reason becomes the dead-letter header)."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from rabbitrun import protocol
from rabbitrun.errors import ProtocolError
from rabbitrun.keys import TaskInstanceKey

FIELDS = [
    "v",
    "id",
    "dag_id",
    "task_id",
    "run_id",
    "map_index",
    "try_number",
    "dag_file",
    "queue",
    "priority",
    "execution_timeout_s",
    "enqueued_at",
    "envelope_id",
    "state",
    "exit_code",
    "hostname",
    "started_at",
    "ended_at",
    "error",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
GOOD = protocol.TaskEnvelope(id="e", key=TaskInstanceKey("d", "t", "r"), dag_file="x.py", queue="q").to_wire()


def decodes_or_protocol_error(body: bytes) -> None:
    for decode in (protocol.decode_envelope, protocol.decode_result):
        try:
            decode(body)
        except ProtocolError as exc:
            assert exc.reason
        # anything else propagates and fails the property


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_protocol_errors(body: bytes) -> None:
    decodes_or_protocol_error(body)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=14))
def test_random_maps_never_raise_anything_but_protocol_errors(obj: dict[str, object]) -> None:
    decodes_or_protocol_error(msgpack.packb(obj, use_bin_type=True))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GOOD)), values)
def test_one_corrupted_field_of_a_good_envelope_is_caught(field: str, value: object) -> None:
    decodes_or_protocol_error(msgpack.packb({**GOOD, field: value}, use_bin_type=True))
