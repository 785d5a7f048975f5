"""Objects on S3 (botocore) and HTTP(S) (urllib), read by conditional range requests.

Foreign errors are translated here, once (`_translated`): a missing object is NotFound, a
precondition failure (the ETag no longer matches) `ObjectChanged`, anything else about
reaching the store `Unavailable`, whose message names the location, never a credential.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from node.errors import InvalidInput, NotFound, Unavailable
from node.reads.storage import ObjectChanged, _Remote

__all__ = ["HttpObject", "S3Object", "s3_client"]

_TIMEOUT_S = 30.0


def s3_client(config: Mapping[str, str]) -> Any:
    """A botocore S3 client from TileDB's `vfs.s3.*` settings (so one `[tiledb_config]`
    reaches the same endpoint, with the same credentials, for the store and for reads).
    Unset keys fall back to botocore's own chain (environment, profile, instance role)."""
    import botocore.config
    import botocore.session

    def get(name: str) -> str | None:
        value = config.get(f"vfs.s3.{name}")
        return value or None

    endpoint = get("endpoint_override")
    if endpoint is not None and "://" not in endpoint:
        endpoint = f"{get('scheme') or 'https'}://{endpoint}"
    virtual = (get("use_virtual_addressing") or "true").lower() == "true"
    verify: bool | str = get("ca_file") or (get("verify_ssl") or "true").lower() == "true"
    options = botocore.config.Config(
        s3={"addressing_style": "virtual" if virtual else "path"},
        connect_timeout=_ms(get("connect_timeout_ms"), 10.0),
        read_timeout=_ms(get("request_timeout_ms"), _TIMEOUT_S),
        retries={"max_attempts": 3, "mode": "standard"},
    )
    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        region_name=get("region") or "us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=get("aws_access_key_id"),
        aws_secret_access_key=get("aws_secret_access_key"),
        aws_session_token=get("aws_session_token"),
        verify=verify,
        config=options,
    )


def _name(location: str) -> str:
    """The object's name only: messages reach clients, bucket and host stay internal."""
    return location.rstrip("/").rsplit("/", 1)[-1]


def _ms(value: str | None, default_s: float) -> float:
    return int(value) / 1000 if value else default_s


class S3Object(_Remote):
    """`client()` gives the shared botocore client, created at the first request (in a
    worker thread: resolving credentials may itself ask the network)."""

    def __init__(self, location: str, bucket: str, key: str, client: Callable[[], Any]) -> None:
        self.location, self._bucket, self._key, self._client = location, bucket, key, client

    def head(self) -> tuple[int, str]:
        with self._translated():
            meta = self._client().head_object(Bucket=self._bucket, Key=self._key)
        return int(meta["ContentLength"]), str(meta["ETag"])

    def get(self, offset: int, size: int, etag: str) -> bytes:
        with self._translated():
            out = self._client().get_object(
                Bucket=self._bucket, Key=self._key, IfMatch=etag,
                Range=f"bytes={offset}-{offset + size - 1}",
            )
            body = out["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        if out.get("ETag") != etag:  # a store that ignored If-Match
            raise ObjectChanged()
        return data

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        import botocore.exceptions as bex

        try:
            yield
        except bex.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "412") or status == 412:
                raise ObjectChanged() from exc
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise NotFound(f"no object {_name(self.location)}") from exc
            raise Unavailable(f"object store refused {_name(self.location)} ({code})") from exc
        except bex.BotoCoreError as exc:
            raise Unavailable(f"object store unreachable for {_name(self.location)}") from exc


class HttpObject(_Remote):
    """An object at an HTTP(S) URL that answers HEAD with a strong ETag and honours
    `Range` with `If-Match` (as S3, GCS and Azure public URLs and most servers do)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def head(self) -> tuple[int, str]:
        request = urllib.request.Request(self.location, method="HEAD")
        with self._translated(), urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp:
            etag, length = resp.headers.get("ETag"), resp.headers.get("Content-Length")
        if not etag or etag.startswith("W/") or length is None:
            raise InvalidInput(f"{self.location} has no strong ETag and length: it cannot be "
                            "bound to a version")
        return int(length), etag

    def get(self, offset: int, size: int, etag: str) -> bytes:
        headers = {"Range": f"bytes={offset}-{offset + size - 1}", "If-Match": etag}
        request = urllib.request.Request(self.location, headers=headers)
        with self._translated(), urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp:
            if resp.status != 206 or resp.headers.get("ETag") != etag:
                raise ObjectChanged()
            data: bytes = resp.read()
        return data

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 412:
                raise ObjectChanged() from exc
            if exc.code in (404, 410):
                raise NotFound(f"no object {_name(self.location)}") from exc
            raise Unavailable(f"{_name(self.location)}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise Unavailable(f"{_name(self.location)} is unreachable") from exc
