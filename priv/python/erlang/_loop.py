"""``ErlangEventLoop``: asyncio's Unix selector loop on pyport's Rust poller.

The loop *is* the standard library's ``_UnixSelectorEventLoop``; only the
selector differs (:class:`~erlang._selector.PollerSelector`). Everything the
stdlib builds on a selector therefore behaves exactly as in CPython: TCP, Unix
and UDP transports, servers, SSL, ``sock_*``, ``sendfile``, pipes,
subprocesses (child watchers) and signal handlers (``signal.set_wakeup_fd`` on
the loop's self-pipe). Timers are the loop's own heap: the poller's wait
timeout is the time to the next timer, and with nothing scheduled the loop
waits without a timeout, i.e. an idle loop wakes up zero times.

The one addition is the *iteration hook*: when ``_iteration_hook`` is set,
it is called after every iteration (``_run_once``). The port uses it to flush
all replies produced during the iteration in one non-blocking write.
"""

from __future__ import annotations

import selectors
import threading
from asyncio import unix_events
from collections.abc import Callable

from ._selector import PollerSelector

__all__ = ["ErlangEventLoop"]

# The ErlangEventLoop currently running in the main thread, if any: the
# target of erlang.spawn_task() called from a thread with no running loop
# when no port loop is registered (standalone mode).
_main_thread_loop: ErlangEventLoop | None = None


def main_thread_loop() -> ErlangEventLoop | None:
    """The ``ErlangEventLoop`` running in the main thread, or ``None``."""
    return _main_thread_loop


class ErlangEventLoop(unix_events._UnixSelectorEventLoop):
    """A full asyncio event loop whose I/O readiness comes from pyport's poller.

    ``selector`` defaults to a new :class:`PollerSelector`; passing another
    selector is allowed (it is used as given), which is how the conformance
    harness and tests compare selectors on otherwise identical loops.
    """

    _iteration_hook: Callable[[], object] | None

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        if selector is None:
            selector = PollerSelector()
        super().__init__(selector)
        self._iteration_hook = None

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]  # private in typeshed
        hook = self._iteration_hook
        if hook is not None:
            hook()

    def run_forever(self) -> None:
        global _main_thread_loop
        registered = False
        if (
            _main_thread_loop is None
            and threading.current_thread() is threading.main_thread()
        ):
            _main_thread_loop = self
            registered = True
        try:
            super().run_forever()
        finally:
            if registered:
                _main_thread_loop = None

    def close(self) -> None:
        self._iteration_hook = None
        super().close()
