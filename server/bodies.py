"""A request's body held by an ASGI middleware that must read it before the app does, then handed on as if
unread."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive


@dataclass(frozen=True)
class HeldBody:
    body: bytes  # what was read: all of it, or the first part past `limit` (`more` then)
    more: bool  # the client had more to send when reading stopped
    trailing: Message | None  # what came instead of more body (a disconnect): handed on too

    def replay(self, receive: Receive) -> Receive:
        """A `receive` for the app: the body held, then whatever follows."""
        pending: list[Message] = [{"type": "http.request", "body": self.body, "more_body": self.more}]
        if self.trailing is not None:
            pending.append(self.trailing)

        async def replayed() -> Message:
            return pending.pop(0) if pending else await receive()

        return replayed


async def hold_body(receive: Receive, limit: int) -> HeldBody:
    """Read the request's body, or its first part once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size, more, trailing = 0, True, None
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            trailing = message
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    return HeldBody(b"".join(chunks), more, trailing)
