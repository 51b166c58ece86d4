"""The wire format, version 1: every message as a frozen type with its encoder and strict decoder.

Task envelopes and results (task queues, reply queues: :mod:`.tasks`), the frames of the worker's
pipes (parent <-> zygote <-> task process: :mod:`.frames`), control requests and replies
(:mod:`.control`) and events (:mod:`.events`), over one encoding (:mod:`.codec`, the only module that
calls msgpack). Nobody builds or reads a wire map by hand. Each message is a msgpack map with ``v``
(1). Decoding is strict: anything that is not a well-formed version-1 message of the expected kind
raises a :class:`~rabbitrun.errors.ProtocolError` whose ``reason`` names the field and becomes the
dead-letter header (DESIGN.md, Wire protocol). Unknown keys are ignored, so a newer sender may add
fields. Import from here (``from rabbitrun import protocol``); the submodules are its rooms.
"""

from __future__ import annotations

from rabbitrun.protocol.channel import (
    CHANNEL_MAX_BYTES,
    DATA_OPS,
    ChannelFrame,
    DataOp,
    DataReply,
    DataRequest,
    FinishFrame,
    FinishReply,
    encode_channel_frame,
    split_channel_frames,
)
from rabbitrun.protocol.codec import (
    CONTENT_TYPE,
    MAX_ERROR_CHARS,
    MAX_MESSAGE_BYTES,
    PERSISTENT,
    VERSION,
    Wire,
)
from rabbitrun.protocol.control import (
    CONTROL_MESSAGE_TYPE,
    EVENT_MESSAGE_TYPE,
    ControlReply,
    ControlRequest,
    decode_control_reply,
    decode_control_request,
)
from rabbitrun.protocol.control_auth import (
    NonceCache,
    VerifiedRequest,
    sign_control_request,
    verify_control_request,
)
from rabbitrun.protocol.events import (
    Event,
    Heartbeat,
    LogLines,
    TaskEnded,
    TaskEvent,
    TaskReceived,
    TaskRevoked,
    TaskStarted,
    TaskTimedOut,
    WorkerOffline,
    decode_event,
    encode_message,
)
from rabbitrun.protocol.frames import (
    ClaimedAttempt,
    CommandFrame,
    ExitedFrame,
    Frame,
    OutcomeFrame,
    ReportFrame,
    RunFrame,
    StartedFrame,
    StopFrame,
    decode_frame,
    encode_frame,
    split_frames,
)
from rabbitrun.protocol.tasks import (
    TaskEnvelope,
    TaskResult,
    amqp_priority,
    check_dag_file,
    decode_envelope,
    decode_result,
    encode_envelope,
    encode_result,
    envelope_properties,
    result_properties,
)

__all__ = [
    "CHANNEL_MAX_BYTES",
    "CONTENT_TYPE",
    "CONTROL_MESSAGE_TYPE",
    "DATA_OPS",
    "EVENT_MESSAGE_TYPE",
    "MAX_ERROR_CHARS",
    "MAX_MESSAGE_BYTES",
    "PERSISTENT",
    "VERSION",
    "ChannelFrame",
    "ClaimedAttempt",
    "CommandFrame",
    "ControlReply",
    "ControlRequest",
    "DataOp",
    "DataReply",
    "DataRequest",
    "Event",
    "ExitedFrame",
    "FinishFrame",
    "FinishReply",
    "Frame",
    "Heartbeat",
    "LogLines",
    "NonceCache",
    "OutcomeFrame",
    "ReportFrame",
    "RunFrame",
    "StartedFrame",
    "StopFrame",
    "TaskEnded",
    "TaskEnvelope",
    "TaskEvent",
    "TaskReceived",
    "TaskResult",
    "TaskRevoked",
    "TaskStarted",
    "TaskTimedOut",
    "VerifiedRequest",
    "Wire",
    "WorkerOffline",
    "amqp_priority",
    "check_dag_file",
    "decode_control_reply",
    "decode_control_request",
    "decode_envelope",
    "decode_event",
    "decode_frame",
    "decode_result",
    "encode_channel_frame",
    "encode_envelope",
    "encode_frame",
    "encode_message",
    "encode_result",
    "envelope_properties",
    "result_properties",
    "sign_control_request",
    "split_channel_frames",
    "split_frames",
    "verify_control_request",
]
