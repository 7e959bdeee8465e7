"""How a remote endpoint is described (each provider package lists its own in `endpoints.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from providers.errors import InvalidInput

Location = Literal["path", "query", "body", "header", "frame"]


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    description: str
    required: bool = False
    location: Location = "path"
    default: Any = None


@dataclass(frozen=True)
class Endpoint:
    provider: str
    method: str
    path: str
    tool_name: str
    description: str
    params: tuple[Param, ...] = ()
    example: dict[str, Any] | None = field(default=None, compare=False)
    read_only: bool | None = None  # None: a GET is a read; set True for a POST that only reads

    @property
    def retry_safe(self) -> bool:
        """Safe to send again after a failure: it changes nothing."""
        return self.read_only if self.read_only is not None else self.method == "GET"

    def url_path(self, **path_params: str) -> str:
        """The path with its `{placeholders}` filled, each value percent-encoded. A value that would be an empty,
        `.` or `..` segment, or hold a `/`, is refused before any request: it would send the credential to
        another path of the API."""
        for name, value in path_params.items():
            text = str(value)
            if text.strip() in ("", ".", "..") or "/" in text or "\\" in text:
                raise InvalidInput(
                    self.provider,
                    f"{name} {text!r} cannot be used in a URL path",
                    hint=f"Pass the {name} exactly as the provider lists it (not empty, no '/', not '.' or '..').",
                )
        return self.path.format(**{k: quote(str(v), safe="") for k, v in path_params.items()})


def path_param(name: str, description: str, type_: str = "string") -> Param:
    return Param(name, type_, description, required=True, location="path")


def query_param(name: str, type_: str, description: str, default: Any = None) -> Param:
    return Param(name, type_, description, location="query", default=default)


def body_param(name: str, type_: str, description: str, required: bool = False, default: Any = None) -> Param:
    return Param(name, type_, description, required=required, location="body", default=default)
