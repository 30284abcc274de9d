"""A small least-recently-used cache of values built on first use, keyed by a string the caller
derives (a config's JSON, a fingerprint of arrays) where the inputs themselves are unhashable."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class LRU(Generic[T]):
    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"an LRU cache needs size >= 1, got {size}")
        self.size = size
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str, build: Callable[[], T]) -> T:
        """The value of ``key``, built with ``build()`` when absent; the least recently used
        entry is dropped beyond ``size``. A ``build`` that raises stores nothing."""
        if key not in self._items:
            self._items[key] = build()
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]

    def __len__(self) -> int:
        return len(self._items)
