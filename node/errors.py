"""The one exception tree of fednode.

Each class carries how it reaches the wire: HTTP status, gRPC status code name and
htsget error name. Transports render these in exactly one place each (a middleware per
aiohttp sub-app, one interceptor for gRPC, the CLI's top level).

    NodeError                       500  INTERNAL          (never shown verbatim to clients)
    ├── InvalidInput                400  INVALID_ARGUMENT  InvalidInput
    │   ├── InvalidRange            400  INVALID_ARGUMENT  InvalidRange
    │   └── IngestError             400  INVALID_ARGUMENT  InvalidInput  (file and line)
    ├── Unauthenticated             401  UNAUTHENTICATED   InvalidAuthentication
    ├── PermissionDenied            403  PERMISSION_DENIED PermissionDenied
    │   └── BudgetExhausted         403  RESOURCE_EXHAUSTED PermissionDenied
    ├── NotFound                    404  NOT_FOUND         NotFound
    ├── Conflict                    409  ALREADY_EXISTS    InvalidInput
    ├── UnsupportedFormat           400  INVALID_ARGUMENT  UnsupportedFormat
    ├── PayloadTooLarge             413  INVALID_ARGUMENT  PayloadTooLarge
    ├── Unavailable                 503  UNAVAILABLE       (none)
    └── TimedOut                    504  DEADLINE_EXCEEDED (none)
"""

from __future__ import annotations

import functools
from typing import ClassVar

__all__ = [
    "BudgetExhausted",
    "Conflict",
    "IngestError",
    "InvalidInput",
    "InvalidRange",
    "NodeError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "TimedOut",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedFormat",
]


class NodeError(Exception):
    """Base of every error fednode raises on purpose; the message is safe to show."""

    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"
    htsget_error: ClassVar[str] = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(NodeError):
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    htsget_error = "InvalidInput"


class InvalidRange(InvalidInput):
    htsget_error = "InvalidRange"


class IngestError(InvalidInput):
    """A file could not be ingested; names the file and, where known, the line."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.detail = message

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Picklable (it crosses from ingest worker processes): the keyword arguments.
        return functools.partial(type(self), path=self.path, line=self.line), (self.detail,)


class Unauthenticated(NodeError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    htsget_error = "InvalidAuthentication"


class PermissionDenied(NodeError):
    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    htsget_error = "PermissionDenied"


class BudgetExhausted(PermissionDenied):
    grpc_code = "RESOURCE_EXHAUSTED"


class NotFound(NodeError):
    http_status = 404
    grpc_code = "NOT_FOUND"
    htsget_error = "NotFound"


class Conflict(NodeError):
    http_status = 409
    grpc_code = "ALREADY_EXISTS"
    htsget_error = "InvalidInput"


class UnsupportedFormat(NodeError):
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    htsget_error = "UnsupportedFormat"


class PayloadTooLarge(NodeError):
    http_status = 413
    grpc_code = "INVALID_ARGUMENT"
    htsget_error = "PayloadTooLarge"


class Unavailable(NodeError):
    http_status = 503
    grpc_code = "UNAVAILABLE"
    htsget_error = "InternalError"


class TimedOut(NodeError):
    """The request's work ran past the node's time limit (`server.request_timeout_s`)."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
