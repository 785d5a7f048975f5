"""Parsed layouts (index + header extent) cached per file, invalidated when it changes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from node.errors import NotFound
from node.reads.layout import FileFormat, Layout, load_layout

__all__ = ["LayoutCache"]

Stamp = tuple[int, int, int, int]


class LayoutCache:
    """Layouts keyed by file path; an entry is reused while neither the file nor its
    index has changed (size and mtime), and the least recently used one is evicted."""

    def __init__(self, *, max_entries: int = 256) -> None:
        self._entries: OrderedDict[Path, tuple[Stamp, Layout]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, path: Path, index_path: Path, fmt: FileFormat) -> Layout:
        stamp = _stamp(path, index_path)
        hit = self._hit(path, stamp)
        if hit is not None:
            return hit
        layout = load_layout(path, index_path, fmt)
        with self._lock:
            self._entries[path] = (stamp, layout)
            self._entries.move_to_end(path)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return layout

    def peek(self, path: Path, index_path: Path) -> Layout | None:
        """The cached layout if it is still current, else None (never parses: two `stat`
        calls, cheap enough for the event loop)."""
        return self._hit(path, _stamp(path, index_path))

    def _hit(self, path: Path, stamp: Stamp) -> Layout | None:
        with self._lock:
            hit = self._entries.get(path)
            if hit is None or hit[0] != stamp:
                return None
            self._entries.move_to_end(path)
            return hit[1]


def _stamp(path: Path, index_path: Path) -> Stamp:
    try:
        st, si = path.stat(), index_path.stat()
    except FileNotFoundError as exc:
        raise NotFound(f"file {path.name} or its index is gone") from exc
    return st.st_mtime_ns, st.st_size, si.st_mtime_ns, si.st_size
