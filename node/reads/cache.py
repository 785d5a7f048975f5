"""Parsed layouts (index + header extent) cached per file, invalidated when it changes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

from node.reads.layout import FileFormat, Layout, load_layout
from node.reads.storage import ByteSource, LocalFile

__all__ = ["LayoutCache"]

Stamp = tuple[str, str]
# How long a remote layout is taken as current without asking the store again. A block
# URL cut from a layout that is stale by then is still safe: it names the version parsed
# and the data endpoint reads with If-Match, so it fails rather than serve other bytes.
REMOTE_RECHECK_S = 1.0


class LayoutCache:
    """Layouts keyed by file location; an entry is reused while neither the file nor its
    index has changed (their versions: size and mtime, or size and ETag), and the least
    recently used one is evicted."""

    def __init__(self, *, max_entries: int = 256) -> None:
        self._entries: OrderedDict[str, tuple[Stamp, float, Layout]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(
        self, path: ByteSource | Path, index_path: ByteSource | Path, fmt: FileFormat
    ) -> Layout:
        """The current layout (blocking: a `stat` or HEAD per file, a parse on a change)."""
        source, index = _source(path), _source(index_path)
        stamp = (source.version(), index.version())
        hit = self._hit(source.location, stamp)
        if hit is not None:
            return hit
        layout = load_layout(source, index, fmt)
        with self._lock:
            self._entries[source.location] = (stamp, time.monotonic(), layout)
            self._entries.move_to_end(source.location)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return layout

    def peek(self, path: ByteSource | Path, index_path: ByteSource | Path) -> Layout | None:
        """The cached layout if it is still current, else None. Never parses and never
        waits on the network (event-loop safe): two `stat` calls for a local file; a remote
        one counts as current for `REMOTE_RECHECK_S` after it was last checked."""
        source, index = _source(path), _source(index_path)
        if source.remote or index.remote:
            with self._lock:
                hit = self._entries.get(source.location)
            if hit is None or time.monotonic() - hit[1] > REMOTE_RECHECK_S:
                return None
            return hit[2]
        return self._hit(source.location, (source.version(), index.version()))

    def _hit(self, location: str, stamp: Stamp) -> Layout | None:
        with self._lock:
            hit = self._entries.get(location)
            if hit is None or hit[0] != stamp:
                return None
            self._entries[location] = (stamp, time.monotonic(), hit[2])
            self._entries.move_to_end(location)
            return hit[2]


def _source(path: ByteSource | Path) -> ByteSource:
    return LocalFile(path) if isinstance(path, Path) else path
