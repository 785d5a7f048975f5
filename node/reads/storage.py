"""Where a registered file's bytes come from: a local file, an S3 object or an HTTP(S) URL.

Every read names one version of the file. A version is `size:mtime_ns` for a local file
(checked with `fstat` on the open descriptor) and `size:ETag` for an object (every range
GET carries `If-Match: ETag`, so the store itself refuses to send bytes of another
version: HTTP §13.1.1, S3 GetObject `IfMatch`). A layout parsed from one version, and
the block URLs cut from it, therefore never serve bytes of another: `ObjectChanged`.

S3 is reached with botocore, configured from the same `[tiledb_config]` `vfs.s3.*` keys
the store's TileDB VFS uses (docs/decisions.md: TileDB's VFS exposes neither ETags nor
conditional reads). Locations with credentials in them (`user:pass@`, a query string such
as a presigned URL's) are refused: they would end up in the catalog and in logs.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from node.errors import InvalidInput, NotFound

__all__ = [
    "ByteSource",
    "LocalFile",
    "ObjectChanged",
    "Opened",
    "Storage",
    "is_remote",
]

READ_AHEAD = 256 << 10  # one range GET per 256 KiB while a header or index is parsed


class ObjectChanged(NotFound):
    """The file is no longer the version a layout or a block URL was made from."""

    def __init__(self, location: str = "") -> None:
        del location  # never echoed: the message reaches clients
        super().__init__("the file changed since the ticket was issued; request a new ticket")


@dataclass(slots=True)
class Opened:
    """One version of a file, open: `fh` for parsing, `fetch(offset, n)` for exact ranges,
    `fileno` for sendfile (local files only)."""

    fh: BinaryIO
    version: str
    size: int
    fetch: Callable[[int, int], bytes]
    fileno: int | None = None

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ByteSource(Protocol):
    """A file by location: its current version, and the file opened at one version."""

    @property
    def location(self) -> str: ...

    @property
    def remote(self) -> bool: ...

    def version(self) -> str:
        """The current version (a `stat`, or a HEAD request); NotFound when absent."""
        ...

    def open(self, version: str | None = None) -> Opened:
        """The file at `version` (None: the current one); `ObjectChanged` if it is not."""
        ...


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    remote: bool = False

    @property
    def location(self) -> str:
        return str(self.path)

    def version(self) -> str:
        try:
            return _local_version(self.path.stat())
        except OSError as exc:
            raise NotFound("the file is gone") from exc

    def open(self, version: str | None = None) -> Opened:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise NotFound("the file is gone") from exc
        st = os.fstat(fh.fileno())
        current = _local_version(st)
        if version is not None and current != version:
            fh.close()
            raise ObjectChanged()
        fd = fh.fileno()
        return Opened(fh, current, st.st_size, lambda o, n: os.pread(fd, n, o), fd)


def _local_version(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"


class _Remote:
    """An object read by ranges, each conditional on the ETag of the version opened."""

    remote = True
    location: str

    def head(self) -> tuple[int, str]:
        raise NotImplementedError

    def get(self, offset: int, size: int, etag: str) -> bytes:
        raise NotImplementedError

    def version(self) -> str:
        size, etag = self.head()
        return f"{size}:{etag}"

    def open(self, version: str | None = None) -> Opened:
        size_text, _, etag = (version or self.version()).partition(":")
        size = int(size_text)

        def fetch(offset: int, n: int) -> bytes:
            n = min(n, size - offset)
            if n <= 0:
                return b""
            data = self.get(offset, n, etag)
            if len(data) != n:
                raise ObjectChanged()
            return data

        raw = _RangeIO(size, fetch)
        return Opened(io.BufferedReader(raw, READ_AHEAD), f"{size}:{etag}", size, fetch)


class _RangeIO(io.RawIOBase):
    """A read-only, seekable file over `fetch(offset, n)`."""

    def __init__(self, size: int, fetch: Callable[[int, int], bytes]) -> None:
        self._size, self._fetch, self._pos = size, fetch, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._fetch(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


@dataclass
class Storage:
    """Sources by location, sharing one S3 client (botocore clients are thread-safe)."""

    tiledb_config: Mapping[str, str] = field(default_factory=dict)
    _s3: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def source(self, location: str | Path) -> ByteSource:
        if isinstance(location, Path) or not is_remote(location):
            return LocalFile(Path(location))
        parts = urlsplit(location)
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidInput("object URLs must not carry credentials, a query or a fragment")
        if parts.scheme == "s3":
            from node.reads.remote import S3Object

            key = parts.path.lstrip("/")
            if not parts.netloc or not key:
                raise InvalidInput(f"not an s3://BUCKET/KEY location: {location}")
            return S3Object(location, parts.netloc, key, self._client)  # made off the loop
        if parts.scheme in ("http", "https"):
            from node.reads.remote import HttpObject

            return HttpObject(location)
        raise InvalidInput(f"unsupported location scheme {parts.scheme!r} (s3, https, a path)")

    def _client(self) -> Any:
        with self._lock:
            if self._s3 is None:
                from node.reads.remote import s3_client

                self._s3 = s3_client(self.tiledb_config)
            return self._s3


def is_remote(location: str) -> bool:
    return "://" in location
