"""Text and JSON from outside the server made safe before any of it reaches a result: valid Unicode, finite
numbers, bounded nesting, and no credential in any form a provider may echo it back in."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

# Deeper than this is no record a provider means to send; clients' JSON readers give up not far above (~250).
MAX_DEPTH = 64
REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words
_SURROGATE = re.compile("[\ud800-\udfff]")


class TooDeep(ValueError):
    """JSON nested deeper than its reader takes."""

    def __init__(self, levels: int = MAX_DEPTH) -> None:
        super().__init__(f"nested deeper than {levels} levels")


class NonFinite(ValueError):
    """A NaN or infinite number where JSON has none; `where` is its path (e.g. data.a[2])."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} is not a finite number")
        self.where = where


def valid_text(text: str) -> str:
    """`text` as valid Unicode: a lone surrogate becomes U+FFFD (a pair split in two halves becomes its character
    again). Such text cannot be encoded as UTF-8, and a JSON serializer that meets it fails."""
    if text.isascii() or _SURROGATE.search(text) is None:  # isascii: a fast look at the usual case
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class Redactor:
    """Replaces every given secret with [redacted]: as sent, percent-encoded, in any letter case, and as HTTP
    Basic credentials (base64) when given as a (user, password) pair."""

    def __init__(self, secrets: Iterable[str], basic: Iterable[tuple[str, str]] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                forms |= {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
        for user, password in basic:
            forms.add(base64.b64encode(f"{user}:{password}".encode()).decode())
        ordered = sorted(forms, key=len, reverse=True)  # the longest first: no half of one survives
        self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)


def no_secrets(text: str) -> str:
    return text


def parse_answer(data: bytes | str, redact: Callable[[str], str] = no_secrets) -> Any:
    """A provider's JSON answer as safe values (see safe_value); NaN, Infinity and numbers too large for a float
    become null. Raises ValueError when it is not JSON, TooDeep when nested deeper than MAX_DEPTH."""
    text = data.decode("utf-8-sig", "replace") if isinstance(data, bytes | bytearray) else data
    try:
        value = json.loads(text, parse_constant=lambda _: None, parse_float=_finite_or_null)
    except RecursionError:
        raise TooDeep() from None
    return safe_value(value, redact)


def safe_value(value: Any, redact: Callable[[str], str] = no_secrets, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON value with every string (and key) valid and redacted, every non-finite float null, and at most
    `max_depth` levels of nesting (else TooDeep)."""

    def safe(item: Any, left: int) -> Any:
        if isinstance(item, str):
            return redact(valid_text(item))
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        if isinstance(item, dict | list):
            if left <= 0:
                raise TooDeep(max_depth)
            if isinstance(item, list):
                return [safe(inner, left - 1) for inner in item]
            return {redact(valid_text(str(k))): safe(v, left - 1) for k, v in item.items()}
        return item

    return safe(value, max_depth)


def valid_input(value: Any, where: str) -> Any:
    """A client's argument (a JSON value) with every string and key valid; raises NonFinite naming the first NaN
    or infinite number in it (JSON has none, yet JSON readers take NaN and 1e999: nothing downstream could
    store or send them back as JSON)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise NonFinite(where)
    if isinstance(value, dict):
        return {valid_text(str(k)): valid_input(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [valid_input(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def _finite_or_null(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None
