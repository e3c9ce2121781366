"""A :mod:`selectors` selector backed by pyport's Rust poller.

:class:`PollerSelector` has the semantics (and the errors) of
:class:`selectors.EpollSelector`, so asyncio's selector event loop runs on it
unchanged: readiness is level-triggered, ``select()`` releases the GIL while it
waits, and a signal arriving during the wait makes it return ``[]`` after the
Python-level signal handlers ran (the loop's self-pipe then wakes it up).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey
from typing import Any

from ._native import _pyport

__all__ = ["PollerSelector"]

_VALID_EVENTS = EVENT_READ | EVENT_WRITE


def _fileobj_to_fd(fileobj: Any) -> int:
    """Return the file descriptor of an int or of an object with fileno()."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _KeyMapping(Mapping[Any, SelectorKey]):
    """Read-only ``fileobj -> SelectorKey`` view returned by ``get_map()``."""

    __slots__ = ("_selector",)

    def __init__(self, selector: PollerSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._fd_to_key)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        try:
            fd = self._selector._fileobj_lookup(fileobj)
            return self._selector._fd_to_key[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._selector._fd_to_key)


class PollerSelector(BaseSelector):
    """Selector on a ``_pyport.Poller`` (Linux: epoll, level-triggered).

    Errors match :class:`selectors.EpollSelector`: ``ValueError`` for an
    invalid file object or event mask, ``KeyError`` for a duplicate or unknown
    registration, ``OSError`` from the poller (e.g. ``EPERM`` for a regular
    file), ``RuntimeError`` from ``get_key()`` once closed.
    """

    def __init__(self) -> None:
        self._fd_to_key: dict[int, SelectorKey] = {}
        self._map: _KeyMapping | None = _KeyMapping(self)
        self._poller: _pyport.Poller | None = _pyport.Poller()

    # -- helpers -----------------------------------------------------------

    def _fileobj_lookup(self, fileobj: Any) -> int:
        """fd of ``fileobj``; a closed object still registered is found by identity."""
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            for key in self._fd_to_key.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def _get_poller(self) -> _pyport.Poller:
        poller = self._poller
        if poller is None:
            raise RuntimeError("Selector is closed")
        return poller

    # -- BaseSelector API --------------------------------------------------

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        if (not events) or (events & ~_VALID_EVENTS):
            raise ValueError(f"Invalid events: {events!r}")
        poller = self._get_poller()
        key = SelectorKey(fileobj, self._fileobj_lookup(fileobj), events, data)
        if key.fd in self._fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {key.fd}) is already registered")
        self._fd_to_key[key.fd] = key
        try:
            poller.register(key.fd, events)
        except BaseException:
            del self._fd_to_key[key.fd]
            raise
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        try:
            key = self._fd_to_key.pop(self._fileobj_lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        poller = self._poller
        if poller is not None:
            try:
                poller.unregister(key.fd)
            except OSError:
                # The fd was closed since it was registered: the kernel has
                # already dropped it from the poll set.
                pass
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if (not events) or (events & ~_VALID_EVENTS):
            raise ValueError(f"Invalid events: {events!r}")
        changed = False
        if events != key.events:
            try:
                self._get_poller().modify(key.fd, events)
            except BaseException:
                # Same as EpollSelector: a failed modify leaves it unregistered.
                self.unregister(fileobj)
                raise
            changed = True
        if data != key.data:
            changed = True
        if changed:
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        return key

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        poller = self._get_poller()
        wait: float | None
        if timeout is None:
            wait = None
        elif timeout <= 0:
            wait = 0.0
        else:
            # Millisecond resolution underneath: round away from zero so that
            # we wait *at least* ``timeout`` (as EpollSelector does), else the
            # loop would spin through a few early wake-ups before a timer.
            wait = math.ceil(timeout * 1e3) * 1e-3
        ready: list[tuple[SelectorKey, int]] = []
        try:
            fd_events = poller.poll(wait)
        except InterruptedError:
            return ready
        fd_to_key = self._fd_to_key
        for fd, events in fd_events:
            key = fd_to_key.get(fd)
            if key is not None:
                ready.append((key, events & key.events))
        return ready

    def close(self) -> None:
        self._fd_to_key.clear()
        self._map = None
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.close()

    def get_map(self) -> Mapping[Any, SelectorKey]:
        # Like the stdlib selectors, None once closed (BaseSelector.get_key
        # turns that into RuntimeError('Selector is closed')).
        return self._map  # type: ignore[return-value]

    def detach(self) -> None:
        """In a child forked while this selector was in use: let go of the
        epoll instance it shares with the parent.

        Registrations live in that shared instance, so unregistering them
        here would unregister them in the parent too; they are forgotten
        instead, and the poller's descriptor points elsewhere (see
        ``_pyport.Poller.detach``). Later calls fail with ``OSError`` rather
        than touch the parent's set.
        """
        self._fd_to_key.clear()
        poller = self._poller
        if poller is not None:
            poller.detach()

    def wakeup(self) -> None:
        """Wake a ``select()`` in progress from any thread."""
        poller = self._poller
        if poller is not None:
            poller.notify()
