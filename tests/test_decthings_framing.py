"""Decthings' binary framing: varints at every width, requests and responses, and refusal of broken frames."""

from __future__ import annotations

import json

import pytest

from providers.decthings.client import decode_response, decode_varint, encode_request, encode_varint
from tests.fakes import decthings_frame


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (252, b"\xfc"),
        (253, b"\xfd\x00\xfd"),
        (65_535, b"\xfd\xff\xff"),
        (65_536, b"\xfe\x00\x01\x00\x00"),
        (2**32 - 1, b"\xfe\xff\xff\xff\xff"),
        (2**32, b"\xff\x00\x00\x00\x01\x00\x00\x00\x00"),
    ],
)
def test_varint_widths(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


def test_request_layout_with_long_json() -> None:
    params = {"filter": {"searchName": "x" * 300}}
    message = json.dumps(params, separators=(",", ":")).encode()
    assert len(message) > 253
    assert encode_request(params) == bytes([0]) + b"\xfd" + len(message).to_bytes(2, "big") + message


@pytest.mark.parametrize("size", [10, 252, 253, 300, 70_000])
def test_a_response_is_read_and_its_blobs_skipped(size: int) -> None:
    payload = {"result": {"persistentLaunchers": [], "note": "y" * size}}
    assert decode_response(decthings_frame(payload, (b"first", b"\x01" * 300))) == payload


@pytest.mark.parametrize("body", [b"", b"\xfd\x01", b"\x10{}", b"\x02{]"])
def test_broken_frames_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_response(body)
