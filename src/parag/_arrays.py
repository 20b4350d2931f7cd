"""A numpy array that grows by appending, in amortised O(1) per element."""

from __future__ import annotations

from typing import Any

import numpy as np


class GrowableArray:
    """The first ``len(self)`` entries of a buffer that doubles when full.

    ``view`` is a plain numpy view of the valid entries; it stays valid until the next
    ``append`` or ``keep``.
    """

    def __init__(self, dtype: Any, fill: Any, values: np.ndarray | None = None) -> None:
        self._fill = fill
        self._buffer = np.empty(0, dtype) if values is None else np.asarray(values, dtype)
        self.view = self._buffer

    def __len__(self) -> int:
        return len(self.view)

    def append(self, values: Any, count: int | None = None) -> None:
        """Append ``values`` (an array), or ``count`` copies of the fill value."""
        n = len(values) if count is None else count
        start, end = len(self.view), len(self.view) + n
        if end > len(self._buffer):
            grown = np.empty(max(end, 2 * len(self._buffer)), self._buffer.dtype)
            grown[:start] = self.view
            self._buffer = grown
        self._buffer[start:end] = self._fill if count is not None else values
        self.view = self._buffer[:end]

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` entries (undoing appends: the buffer stays as large)."""
        self.view = self._buffer[:n]

    def keep(self, mask: np.ndarray) -> None:
        """Drop the entries where ``mask`` is False."""
        self._buffer = self.view[mask]
        self.view = self._buffer
