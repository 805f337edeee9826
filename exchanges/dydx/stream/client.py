"""The gRPC connection to a full node's ``StreamOrderbookUpdates`` (``grpc.aio``, never blocking).

``dydxprotocol.clob.Query/StreamOrderbookUpdates`` is a server-streaming RPC (v4-chain
``proto/dydxprotocol/clob/query.proto``): the request names the CLOB pairs
(``clob_pair_id``, repeated uint32), the node answers with a snapshot of its book and then
every order message (v4-chain ``protocol/streaming/full_node_streaming_manager.go``). A
node streams only with ``--grpc-streaming-enabled`` (v4-documentation
``pages/api_integration-full-nodes/full_node_streaming.md``).

:func:`open_stream` opens the call and waits for its first message: an endpoint that
refuses the connection, does not implement the method, ends the call or stays silent
for ``timeout_s`` "does not stream", and :class:`StreamUnavailable` says which of these it
was in one line.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

#: snapshots of a busy mainnet book are megabytes; gRPC's default receive cap is 4 MiB
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class StreamUnavailable(Exception):
    """The endpoint does not stream order-book updates; ``str()`` is one line naming why."""


class StreamCall:
    """One open ``StreamOrderbookUpdates`` call and its channel.

    ``first`` is the first response (already received by :func:`open_stream`);
    :meth:`responses` yields it and then every further one until the call ends.
    """

    def __init__(self, channel: Any, call: Any, first: Any):
        self.channel = channel
        self.call = call
        self.first = first

    async def responses(self) -> AsyncIterator[Any]:
        """The responses (``StreamOrderbookUpdatesResponse``), first one included, until the
        node ends the call.

        :raises grpc.aio.AioRpcError: the call failed (the caller reconnects).
        """
        import grpc

        first, self.first = self.first, None
        if first is not None:
            yield first
        while True:  # read() only: grpc.aio forbids mixing it with async iteration
            resp = await self.call.read()
            if resp is grpc.aio.EOF:
                return
            yield resp

    async def close(self) -> None:
        """Cancel the call and close the channel (idempotent)."""
        try:
            self.call.cancel()
        finally:
            await self.channel.close()


def _describe(exc: Any) -> str:
    import grpc

    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code().name if exc.code() is not None else "UNKNOWN"
        detail = (exc.details() or "").splitlines()[0][:160] if exc.details() else ""
        return f"{code}{': ' + detail if detail else ''}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


async def open_stream(target: str, clob_pair_ids: list[int], *, secure: bool, timeout_s: float) -> StreamCall:
    """Open ``StreamOrderbookUpdates`` for ``clob_pair_ids`` at ``target`` (``host:port``) and
    wait up to ``timeout_s`` seconds for the first response.

    :param secure: TLS (system roots) when True, plaintext otherwise.
    :returns: the open :class:`StreamCall`.
    :raises StreamUnavailable: the endpoint does not stream (refused, unimplemented, call
        ended, or no message within ``timeout_s``); the message is one line.
    """
    import grpc
    from v4_proto.dydxprotocol.clob.query_pb2 import StreamOrderbookUpdatesRequest
    from v4_proto.dydxprotocol.clob.query_pb2_grpc import QueryStub

    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    channel = (grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=options) if secure
               else grpc.aio.insecure_channel(target, options=options))
    call = QueryStub(channel).StreamOrderbookUpdates(
        StreamOrderbookUpdatesRequest(clob_pair_id=list(clob_pair_ids)))
    try:
        async with asyncio.timeout(timeout_s):
            first = await call.read()
    except TimeoutError:
        call.cancel()
        await channel.close()
        raise StreamUnavailable(f"no order-book message within {timeout_s:g}s") from None
    except asyncio.CancelledError:
        call.cancel()
        await channel.close()
        raise
    except grpc.aio.AioRpcError as exc:
        await channel.close()
        raise StreamUnavailable(_describe(exc)) from None
    if first is grpc.aio.EOF:
        code = await call.code()
        await channel.close()
        raise StreamUnavailable(f"the call ended without a message ({code.name if code else 'no status'})")
    return StreamCall(channel, call, first)


def describe_error(exc: BaseException) -> str:
    """One line for a stream failure (gRPC status code and detail, or the exception's type)."""
    return _describe(exc)
