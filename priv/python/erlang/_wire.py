"""The wire protocol, Python side: every envelope the port builds or matches.

The packets themselves, their fields and their order are documented in
docs/protocol.md; this module is the one place in Python that spells them.
Replies of the per-task fast path ``{result, Id, {ok, Value}}`` are built in
Rust (``Channel.send_result``), everything else here.

Atoms the port emits are made at import through :func:`_atom`, which also
records them in :data:`PORT_ATOMS`: the port creates them before the bound on
atoms (``--max-atoms``) applies, so that user code using up the bound cannot
keep the port from saying ``timeout`` or logging a warning. Builders take the
atoms from here, so a new envelope cannot emit an atom missing from the list.
"""

from __future__ import annotations

import traceback
from typing import Any

from ._native import _pyport
from ._types import Atom

#: the version announced in ``{ready, #{protocol => ...}}``; named once, in
#: Rust (``src/protocol.rs``), for the whole executable
PROTOCOL_VERSION: int = _pyport.PROTOCOL_VERSION

_port_atoms: list[str] = []


def _atom(name: str) -> Atom:
    if name not in _port_atoms:
        _port_atoms.append(name)
    return Atom(name)


# -- atoms the port emits ------------------------------------------------------

RESULT = _atom("result")
OK = _atom("ok")
ERROR = _atom("error")
PYTHON = _atom("python")
LOG = _atom("log")
OUTPUT = _atom("output")
READY = _atom("ready")
START_FAILED = _atom("start_failed")
UNKNOWN_MESSAGE = _atom("unknown_message")

# requests to Erlang, answered by a call_reply
CALL = _atom("call")
SEND = _atom("send")
WHEREIS = _atom("whereis")
#: {registered, CallId, Name}: is an Erlang function registered as Name?
#: (``erlang.<name>`` attribute callbacks, docs/porting.md)
REGISTERED = _atom("registered")
#: {call_cancel, CallId}: Python stopped waiting for a call (unanswered)
CALL_CANCEL = _atom("call_cancel")

# actors (docs/actors.md): the port's half of an actor's traffic
ACTOR_STARTED = _atom("actor_started")
ACTOR_ACK = _atom("actor_ack")
ACTOR_REPLY = _atom("actor_reply")

# keys of the ready map, and its mode values (erlang.ExecutionMode)
_PROTOCOL = _atom("protocol")
_PYTHON_VERSION = PYTHON
_OS_PID = _atom("os_pid")
_MODE = _atom("mode")
MODES = {name: _atom(name) for name in ("shared_gil", "subinterp", "free_threaded")}

#: stream atoms of ``{output, Stream, Line}``, by file descriptor
STREAMS = {1: _atom("stdout"), 2: _atom("stderr")}

#: OTP logger levels of ``{log, Level, Logger, Message}``
LEVELS = {name: _atom(name) for name in (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")}

# start failure reasons (``{start_failed, Reason}``)
_BAD_PYTHON_PATH = _atom("bad_python_path")
_BAD_VENV = _atom("bad_venv")
_PRELOAD_FAILED = _atom("preload_failed")

# why a task ended without a result: ``{result, Id, {error, Reason}}``;
# the names are also what SyncFrame.reason and _Job.reason hold
TIMEOUT_REASON = "timeout"
CANCELLED_REASON = "cancelled"
TIMEOUT = _atom(TIMEOUT_REASON)
CANCELLED = _atom(CANCELLED_REASON)
REASONS = {TIMEOUT_REASON: TIMEOUT, CANCELLED_REASON: CANCELLED}

# object handles (docs/handles.md): {result, Id, {handles, Value, Ns}},
# where Value carries each handle as {'$pyport_handle', N}
HANDLES = _atom("handles")
HANDLE_MARKER = _atom("$pyport_handle")
STALE_HANDLE = _atom("stale_handle")
HANDLE_LIMIT = _atom("handle_limit")
# streams (docs/streams.md): ``{stream_data, Id, Items}`` and
# ``{stream_end, Id, done | {error, Reason}}``
STREAM_DATA = _atom("stream_data")
STREAM_END = _atom("stream_end")
DONE = _atom("done")
IDLE_TIMEOUT_REASON = "idle_timeout"
#: why a stream ended without its generator finishing: a task's reasons
#: and ``idle_timeout`` (``{stream_end, Id, {error, Reason}}``)
STREAM_REASONS = {**REASONS, IDLE_TIMEOUT_REASON: _atom(IDLE_TIMEOUT_REASON)}

#: The keys erlang._ops adds to ``ready`` (made here, before the atom bound).
READY_EXTRA = {name: _atom(name)
               for name in ("python_lib", "python_lib_built", "python_lib_same")}

#: every atom the port may send, made before the atom bound applies
PORT_ATOMS: tuple[str, ...] = tuple(_port_atoms)
del _port_atoms


# -- modules Erlang names ---------------------------------------------------------

#: the package's modules that Erlang code (erl_src/) calls by name, as task
#: targets or with ``pyport run -m``: their names and the functions Erlang
#: calls in them are part of the protocol (docs/protocol.md, "Python
#: modules Erlang calls"); the rest of the package is internal
ERLANG_CALLED_MODULES: tuple[str, ...] = (
    # py_event_loop_pool: reload_module(Name); py: eval_iterable;
    # py_runtime: memory_stats, collect_garbage, trace_memory, set_log_level
    "erlang._compat",
    "erlang._contexts",  # py_context: new, call, eval_in, exec_in
    "erlang._env",  # py_runtime: venv_site_packages(Dir)
    "erlang._envcheck",  # pyport_envcheck: pyport run -m erlang._envcheck
    "erlang._handles",  # py_obj: call, get, put, value, info
)


# -- messages from Erlang: tags (as Channel.read() yields them) and fields ---------

TASK = "task"
CANCEL = "cancel"
CALL_REPLY = "call_reply"
EXEC = "exec"
EVAL = "eval"
SETUP = "setup"
STOP = "stop"
OBJ_RELEASE = "obj_release"  # {obj_release, [N]}: Erlang dropped handles
ACTOR_START = "actor_start"
ACTOR_MSG = "actor_msg"
STREAM_START = "stream_start"
STREAM_CREDIT = "stream_credit"
STREAM_CANCEL = "stream_cancel"
LOG_LEVEL = "log_level"  # {log_level, OtpLevel}: the OTP logger's level changed

# task and exec/eval options
OPT_REPLY = "reply"
OPT_DEADLINE = "deadline_ms"
OPT_CALLER = "caller"
OPT_RESULT = "result"  # handle | auto (docs/handles.md)
OPT_HANDLE_ARGS = "handle_args"  # true: the arguments hold #py_obj{} handles
OPT_WINDOW = "window"  # actor_start: messages Erlang sends ahead of consumption
OPT_NONE_ATOM = "none_atom"  # none | nil | undefined: what None becomes in the reply
OPT_LOCALS = "locals"  # eval: a map of local bindings (docs/porting.md)
OPT_STEP = "step_ms"  # actor_start: the longest one step of the actor may run
INFINITY = "infinity"
# stream options (besides caller and deadline_ms)
OPT_WINDOW = "window"
OPT_BATCH = "batch"
OPT_IDLE = "idle_ms"

# the setup map
SETUP_WORKER = "worker"
SETUP_LOOP = "loop"
SETUP_HANDLE_INCARNATION = "handle_incarnation"
SETUP_HANDLE_MAX = "handle_max"

# call_reply payloads: {ok, Value} | {error, Reason}; error reasons below
OK_TAG = "ok"
ERROR_TAG = "error"
ERLANG_EXCEPTION = "erlang"  # {erlang, Class, Reason, Stacktrace}
UNKNOWN_CALLBACK = "unknown_callback"  # {unknown_callback, Name}
UNCONVERTIBLE = "unconvertible"  # {unconvertible, Text}
CALLBACK_LIMIT = "callback_limit"  # {callback_limit, Max}: max_callbacks run
#: erlang.send to another node refused: the distribution is full, or the
#: node is not connected (the message is dropped)
SEND_REFUSED = ("busy", "noconnection")


def split_reply(reply: Any) -> tuple[str, Any] | None:
    """``(OK_TAG, Value)`` or ``(ERROR_TAG, Reason)`` of a call_reply
    payload; ``None`` for anything else."""
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] in (OK_TAG, ERROR_TAG):
        return reply[0], reply[1]
    return None


# -- envelopes -------------------------------------------------------------------


def ready(mode: str, python_version: str, os_pid: int,
          extra: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """``{ready, #{protocol, python, os_pid, mode}}``, plus ``extra``'s keys
    as atoms (``erlang._ops.interpreter_info``)."""
    info: dict[Any, Any] = {
        _PROTOCOL: PROTOCOL_VERSION,
        _PYTHON_VERSION: python_version,
        _OS_PID: os_pid,
        _MODE: MODES[mode],
    }
    for key, value in (extra or {}).items():
        info[READY_EXTRA[key]] = value
    return (READY, info)


def start_failed(reason: Any) -> tuple[Any, ...]:
    return (START_FAILED, reason)


def bad_python_path(path: str) -> tuple[Any, ...]:
    return (_BAD_PYTHON_PATH, path)


def bad_venv(venv: str, why: str) -> tuple[Any, ...]:
    return (_BAD_VENV, venv, why)


def preload_failed(module: str, exc: BaseException) -> tuple[Any, ...]:
    return (_PRELOAD_FAILED, module, python_error(exc))


def python_error(exc: BaseException, with_traceback: bool = True) -> tuple[Any, ...]:
    """``{python, Type, Message, Traceback}`` for ``exc``; the traceback is
    ``""`` when ``with_traceback`` is false (errors of the port itself, whose
    traceback would only show pyport's code).

    Task code chooses its exceptions: ``__str__`` may raise, and so may
    whatever the traceback module calls on the exception, so each part has
    a fallback and building the error never raises.
    """
    name = exception_name(exc)
    return (PYTHON, name, exception_message(exc),
            format_traceback(exc) if with_traceback else "")


def python_error_of(name: str, message: str) -> tuple[Any, ...]:
    """``{python, Name, Message, <<>>}``: an error pyport reports itself
    (no traceback, which would only show pyport's code)."""
    return (PYTHON, name, message, "")


def exception_name(exc: BaseException) -> str:
    """The exception's type name (``__qualname__``, as tracebacks show it)."""
    name = getattr(type(exc), "__qualname__", None)
    return name if isinstance(name, str) else type(exc).__name__


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or ``<unprintable T object>`` when that raises (the
    message the interpreter itself prints for such an exception)."""
    try:
        text = str(exc)
    except BaseException:  # any failure gets the fallback
        return f"<unprintable {exception_name(exc)} object>"
    # str() of a subclass may return a str subclass with its own methods.
    return text if type(text) is str else f"<unprintable {exception_name(exc)} object>"


def format_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, or a shorter one when formatting
    raises (the exception's own text is what fails, in practice)."""
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:  # task code may raise anything here
        pass
    try:
        lines = traceback.format_tb(exc.__traceback__)
    except BaseException:  # task code may raise anything here
        lines = []
    return ("Traceback (most recent call last):\n" + "".join(lines)
            + f"{exception_name(exc)}: {exception_message(exc)}\n")


def result_error(id: Any, reason: Any) -> tuple[Any, ...]:
    """``{result, Id, {error, Reason}}``."""
    return (RESULT, id, (ERROR, reason))


def result_handles(id: Any, value: Any, numbers: list[int]) -> tuple[Any, ...]:
    """``{result, Id, {handles, Value, Ns}}``."""
    return (RESULT, id, (HANDLES, value, numbers))


def stream_data(id: Any, items: list[Any]) -> tuple[Any, ...]:
    """``{stream_data, Id, Items}``: a batch of a stream's items."""
    return (STREAM_DATA, id, items)


def stream_end(id: Any, reason: Any = None) -> tuple[Any, ...]:
    """``{stream_end, Id, done}``, or ``{stream_end, Id, {error, Reason}}``
    when ``reason`` is given."""
    return (STREAM_END, id, DONE if reason is None else (ERROR, reason))


def log(level: str, logger: str, message: str) -> tuple[Any, ...]:
    """``{log, Level, Logger, Message}``; ``level`` is an OTP level name."""
    return (LOG, LEVELS[level], logger, message)


def output(fd: int, line: bytes) -> tuple[Any, ...]:
    """``{output, stdout | stderr, Line}`` for a line written to ``fd``
    (another descriptor, if one is ever captured, is named ``fdN``)."""
    stream = STREAMS.get(fd)
    return (OUTPUT, Atom(f"fd{fd}") if stream is None else stream, line)


def request(tag: Any, call_id: int, fields: tuple[Any, ...]) -> tuple[Any, ...]:
    """``{call | send | whereis, CallId, Fields...}``."""
    return (tag, call_id, *fields)


def call_cancel(call_id: int) -> tuple[Any, ...]:
    """``{call_cancel, CallId}``: the caller gave up; Erlang ends the callback."""
    return (CALL_CANCEL, call_id)


def actor_started(id: Any) -> tuple[Any, ...]:
    """``{actor_started, Id}``: the actor runs (a GenServer: its init returned)."""
    return (ACTOR_STARTED, id)


def actor_ack(id: Any, count: int) -> tuple[Any, ...]:
    """``{actor_ack, Id, Count}``: ``count`` more messages consumed."""
    return (ACTOR_ACK, id, count)


def actor_reply(id: Any, token: int, reply: Any) -> tuple[Any, ...]:
    """``{actor_reply, Id, Token, Reply}``: the answer to a gen_server call."""
    return (ACTOR_REPLY, id, token, reply)


def unknown_message(message: Any) -> tuple[Any, ...]:
    """``{error, {unknown_message, Message}}``."""
    return (ERROR, (UNKNOWN_MESSAGE, message))
