"""NodeErrors reach the gRPC wire here, and only here: each handler of the servicer is
wrapped once; a `NodeError` aborts with its `grpc_code` and safe message, a timeout with
DEADLINE_EXCEEDED, anything else is logged and answered INTERNAL without detail."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from node.errors import NodeError

__all__ = ["streaming", "unary"]

log = logging.getLogger("fednode.peer")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


def _status(exc: NodeError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INTERNAL)


def unary(
    method: Callable[[Any, _Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[_Resp]],
) -> Callable[[Any, _Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[_Resp]]:
    """Errors of a unary handler reach the wire here, and only here."""

    @functools.wraps(method)
    async def wrapper(
        self: Any, request: _Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> _Resp:
        try:
            return await method(self, request, context)
        except NodeError as exc:
            await context.abort(_status(exc), exc.message)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except Exception:
            log.exception("peer call %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable: abort raises")

    return wrapper


def streaming(
    method: Callable[[Any, _Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[_Resp]],
) -> Callable[[Any, _Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[_Resp]]:
    @functools.wraps(method)
    async def wrapper(
        self: Any, request: _Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[_Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except NodeError as exc:
            await context.abort(_status(exc), exc.message)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except Exception:
            log.exception("peer call %s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return wrapper
