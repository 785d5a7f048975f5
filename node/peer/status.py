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


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: Exception, name: str
) -> None:
    """Abort the call for `exc` (raises): the one mapping of errors to gRPC statuses."""
    if isinstance(exc, NodeError):
        await context.abort(_status(exc), exc.message)
    if isinstance(exc, TimeoutError):
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    log.error("peer call %s failed", name, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


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
        except Exception as exc:
            await _abort(context, exc, method.__name__)
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
        except Exception as exc:
            await _abort(context, exc, method.__name__)

    return wrapper
