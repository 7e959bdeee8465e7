"""Secrets added on the way out: a request to a secret's host gets the real value where the sandbox put the
placeholder (request target, headers, and the body for a secret with `body = true`) and the secret's header.
A request elsewhere is left alone, so a placeholder sent there stays a useless placeholder."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .policy import Secret

Headers = list[tuple[bytes, bytes]]


class Substitution:
    """The replacements for one destination."""

    def __init__(self, secrets: Sequence[Secret]) -> None:
        self._pairs = [(s.placeholder.encode(), s.value.encode()) for s in secrets]
        self._set = [(s.header.encode(), s.header_value().encode()) for s in secrets if s.header is not None]
        self._body_pairs = [(s.placeholder.encode(), s.value.encode()) for s in secrets if s.body]

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def text(self, data: bytes) -> bytes:
        for placeholder, value in self._pairs:
            data = data.replace(placeholder, value)
        return data

    def headers(self, headers: Headers) -> Headers:
        """`headers` with the placeholders replaced and the secrets' own headers set (replacing any the client
        sent under those names)."""
        names = {name.lower() for name, _ in self._set}
        kept = [(name, self.text(value)) for name, value in headers if name.lower() not in names]
        return kept + self._set

    def body(self) -> BodyRewriter | None:
        """A rewriter for the request body, or None when no secret for this host asks for one."""
        return BodyRewriter(self._body_pairs) if self._body_pairs else None


class BodyRewriter:
    """Replaces placeholders in a body that arrives in pieces, holding back just enough of each piece's end
    that a placeholder split between two pieces is still found."""

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]]) -> None:
        self._values = dict(pairs)
        self._placeholders = re.compile(b"|".join(re.escape(placeholder) for placeholder in self._values))
        self._hold = max(len(placeholder) for placeholder in self._values) - 1
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        """What can be sent of the body so far."""
        work = self._carry + data
        out: list[bytes] = []
        position = 0
        for found in self._placeholders.finditer(work):
            out += [work[position : found.start()], self._values[found[0]]]
            position = found.end()
        keep_from = max(position, len(work) - self._hold)
        out.append(work[position:keep_from])
        self._carry = work[keep_from:]
        return b"".join(out)

    def finish(self) -> bytes:
        """The rest, once the body has ended (what was held back cannot hold a whole placeholder)."""
        rest, self._carry = self._carry, b""
        return rest
