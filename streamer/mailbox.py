"""Single-slot hand-off between pipeline threads: the newest item wins, the replaced one is
counted as dropped. Real time means drop, not queue."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class MailboxClosed(Exception):
    """The mailbox was closed; no more items will arrive."""


class Mailbox(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0  # items overwritten before anyone took them
        self.put_count = 0

    def put(self, item: T) -> None:
        """Store ``item``, replacing (and counting) an untaken one. Never blocks."""
        with self._cond:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify()

    def get(self, timeout: float) -> T | None:
        """The newest item, or None after ``timeout`` seconds. Raises MailboxClosed once closed and empty."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if self._full:
                item, self._item, self._full = self._item, None, False
                return item
            if self._closed:
                raise MailboxClosed(self.name)
            return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
