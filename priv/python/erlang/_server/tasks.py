"""Erlang's tasks: ``{task, Id, Module, Func, Args, Kwargs, Opts}`` runs
``Module.Func(*Args, **Kwargs)`` as a plain call (under the watchdog when it
has a deadline) or, when it returns an awaitable, as an asyncio Task; its
end is replied (``erlang._server.replies``). ``{cancel, Id}`` cancels it.

Whatever a task raises, ``BaseException`` subclasses included, is that
task's error, never the port's end. The options (``deadline_ms``,
``caller``, ``reply``, ``result``, ``none_atom``, ``handle_args``) are in
docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from types import ModuleType
from typing import Any, Callable

from .._deadline import TaskDeadline, call_with_deadline
from .._handles import HandleTable, StaleHandleError
from .._interop import current_caller, resolve
from .._schedule import follow_inline, is_marker, run_marker
from .._types import Pid
from .._wire import (
    CANCELLED_REASON,
    INFINITY,
    OPT_CALLER,
    OPT_DEADLINE,
    OPT_HANDLE_ARGS,
    OPT_NONE_ATOM,
    OPT_REPLY,
    OPT_RESULT,
    REASONS,
    STALE_HANDLE,
    TIMEOUT_REASON,
    python_error,
)
from .core import ServerCore
from .replies import Replies

__all__ = ["OptionError", "Tasks", "options"]

#: Results that are certainly not awaitable: skips ``inspect.isawaitable``
#: (an ABC check) on the hot path of plain functions.
_PLAIN_RESULTS = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict})


class _Job:
    """A task the server runs as an asyncio Task (it may be cancelled)."""

    __slots__ = ("id", "label", "reply", "task", "timer", "reason", "mode", "none_atom")

    def __init__(self, id: Any, label: str, reply: bool, task: asyncio.Future[Any]) -> None:
        self.id = id
        self.label = label
        self.reply = reply
        self.task = task
        self.timer: asyncio.TimerHandle | None = None
        # Why the server cancelled the task: "cancelled" or "timeout".
        self.reason: str | None = None
        # The task's `result` option (handle | auto), None for a term.
        self.mode: str | None = None
        # The task's `none_atom` option, None for the port's default.
        self.none_atom: str | None = None


class OptionError(TypeError):
    """A task's options map is malformed."""


def options(opts: Any) -> tuple[bool, float | None]:
    """``(reply, deadline_seconds)`` from a task's (or an exec's) options map."""
    if opts is None:
        return True, None
    if not isinstance(opts, dict):
        raise OptionError(f"task options must be a map, not {type(opts).__name__}")
    reply = opts.get(OPT_REPLY, True) is not False
    deadline = opts.get(OPT_DEADLINE)
    if deadline is None or deadline == INFINITY:
        return reply, None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise OptionError(f"deadline_ms must be a number of milliseconds, "
                          f"not {deadline!r}")
    return reply, max(deadline, 0) / 1000.0


class Tasks:
    """The tasks of one port server: started, tracked until their reply,
    cancelled on Erlang's word or at their deadline."""

    def __init__(self, core: ServerCore, replies: Replies, handles: HandleTable) -> None:
        self._core = core
        self._loop = core.loop
        self._bridge = core.bridge
        self._time_slice = core.context.time_slice
        self._replies = replies
        self._handles = handles
        self.jobs: dict[Any, _Job] = {}
        self._modules: dict[str, ModuleType] = {}

    def carries(self, exc: BaseException) -> bool:
        """Whether a task of Erlang's has ended with ``exc`` as its error."""
        for job in self.jobs.values():
            done = job.task
            if done.done() and not done.cancelled() and done.exception() is exc:
                return True
        return False

    def unasked_stop(self) -> None:
        """The loop ended without Erlang asking: nobody cancelled the tasks
        cancelled now, so they get no reply (Erlang fails their callers)."""
        for job in self.jobs.values():
            job.reply = False

    # -- what a task names ------------------------------------------------------

    def lookup(self, module_name: Any, func_name: Any) -> Callable[..., Any]:
        """``module.func`` as a task names it (imported once per module)."""
        if not isinstance(module_name, str):
            raise TypeError(f"module name must be a string, not {type(module_name).__name__}")
        if not isinstance(func_name, str):
            raise TypeError(f"function name must be a string, not {type(func_name).__name__}")
        module = self._modules.get(module_name)
        if module is None:
            module = importlib.import_module(module_name)
            self._modules[module_name] = module
        # A dotted name reaches into the module: 'path.join' on os, 'Cls.meth'.
        target: object = (resolve(module, func_name) if "." in func_name
                          else getattr(module, func_name))
        if not callable(target):
            raise TypeError(f"{module_name}.{func_name} is not callable "
                            f"({type(target).__name__})")
        return target

    # -- messages from Erlang ---------------------------------------------------

    def run(self, id: Any, module_name: Any, func_name: Any,
            args: Any, kwargs: Any, opts: Any) -> None:
        """``{task, Id, Module, Func, Args, Kwargs, Opts}``."""
        label = f"{module_name}.{func_name}"
        mode: str | None = None
        none_atom: str | None = None
        replies = self._replies
        if not opts:
            # The common case (create_task/await): no deadline, a reply.
            reply, deadline = True, None
        else:
            try:
                reply, deadline = options(opts)
            except OptionError as exc:
                replies.error(id, python_error(TypeError(str(exc)), with_traceback=False))
                return
            mode = opts.get(OPT_RESULT)
            if mode not in ("handle", "auto"):
                mode = None
            none_atom = opts.get(OPT_NONE_ATOM)
            if not isinstance(none_atom, str):
                none_atom = None
            if opts.get(OPT_HANDLE_ARGS) is True:
                try:
                    args = self._handles.resolve(args)
                    if kwargs:
                        kwargs = self._handles.resolve(kwargs)
                except StaleHandleError:
                    replies.error(id, STALE_HANDLE)
                    return
        caller = opts.get(OPT_CALLER) if isinstance(opts, dict) else None
        token = current_caller.set(caller if isinstance(caller, Pid) else None)
        bridge = self._bridge
        loop = self._loop
        frame = bridge.enter_frame(id, None if deadline is None else loop.time() + deadline)
        self._time_slice.used = 0
        try:
            func = self.lookup(module_name, func_name)
            if not isinstance(args, (list, tuple)):
                raise TypeError(f"task arguments must be a list, not {type(args).__name__}")
            if kwargs is None:
                kwargs = {}
            elif not isinstance(kwargs, dict):
                raise TypeError(f"task kwargs must be a map, not {type(kwargs).__name__}")
            if deadline is None:
                result = func(*args, **kwargs)
            else:
                result = call_with_deadline(func, args, kwargs, deadline)
            if is_marker(result):
                # erlang.schedule_inline(): continue here and now.
                result = follow_inline(result, None if frame.deadline is None
                                       else frame.deadline - loop.time())
            if is_marker(result):
                # erlang.schedule()/schedule_py(): continue as a Task.
                result = run_marker(result)
            if type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    task = loop.create_task(result, name=f"pyport:{label}")
                else:
                    task = asyncio.ensure_future(result, loop=loop)
            else:
                if reply:
                    replies.ok(id, result, mode, none_atom)
                return
        except asyncio.CancelledError:
            # Cancelled (or timed out) while waiting in a blocking Erlang call.
            self._ended(id, reply, label, frame.reason or CANCELLED_REASON)
            return
        except TaskDeadline:
            # A plain function still running at its deadline, interrupted
            # by the watchdog: it alone times out, the loop goes on.
            self._ended(id, reply, label, TIMEOUT_REASON)
            return
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt, GeneratorExit and the like
            # too: the task's error, never the port's end.
            replies.fail(id, reply, label, exc)
            return
        finally:
            bridge.leave_frame(frame)
            current_caller.reset(token)
        job = _Job(id, label, reply, task)
        job.mode = mode
        job.none_atom = none_atom
        self.jobs[id] = job
        if deadline is not None:
            job.timer = loop.call_later(deadline, self._expire, job)
        task.add_done_callback(functools.partial(self._task_done, job))

    def cancel(self, id: Any) -> None:
        """``{cancel, Id}`` for a task (the caller gave up or died)."""
        job = self.jobs.get(id)
        if job is None:
            # A plain function still running can only be waiting in a
            # blocking Erlang call: make that call give up.
            self._bridge.cancel_frame(id, CANCELLED_REASON)
            return
        if job.task.done():
            return  # finished already (its reply is queued or sent)
        job.reason = CANCELLED_REASON
        job.task.cancel(msg="pyport: cancelled by Erlang")

    def adopt(self, id: Any, label: str, task: asyncio.Task[Any]) -> None:
        """Track ``task`` (an actor's) as Erlang's task ``id``: its end is
        replied, and ``{cancel, Id}`` cancels it."""
        job = _Job(id, label, True, task)
        self.jobs[id] = job
        task.add_done_callback(functools.partial(self._task_done, job))

    # -- ends ------------------------------------------------------------------

    def _ended(self, id: Any, reply: bool, label: str, reason: str) -> None:
        """Task ``id`` was cancelled or timed out."""
        if reply:
            self._replies.error(id, REASONS[reason])
        elif reason == TIMEOUT_REASON:
            self._core.log("error", f"task {label} timed out")

    def _expire(self, job: _Job) -> None:
        job.timer = None
        if not job.task.done():
            job.reason = TIMEOUT_REASON
            job.task.cancel(msg="pyport: deadline_ms passed")

    def _task_done(self, job: _Job, task: asyncio.Future[Any]) -> None:
        if self.jobs.get(job.id) is job:
            del self.jobs[job.id]
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.reason is not None or task.cancelled():
            # A cancel we asked for wins even if the task swallowed it.
            if not task.cancelled():
                task.exception()  # mark it retrieved: no "never retrieved" log
            self._ended(job.id, job.reply, job.label, job.reason or CANCELLED_REASON)
            return
        exc = task.exception()
        if isinstance(exc, TaskDeadline):
            # A step run under the watchdog (an actor's) overran its bound.
            self._ended(job.id, job.reply, job.label, TIMEOUT_REASON)
        elif exc is not None:
            self._replies.fail(job.id, job.reply, job.label, exc)
        elif job.reply:
            self._replies.ok(job.id, task.result(), job.mode, job.none_atom)
