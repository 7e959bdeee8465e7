"""What the egress proxy lets out: the allow-list, the fixed name → address map, and the secrets with their hosts.

Parsed from plain data (lists and dicts, as they come from TOML); anything malformed or too broad is refused
with a ValueError that names the entry, so a bad configuration fails at start, not on the first request.
"""

from __future__ import annotations

import ipaddress
import re
import secrets as random
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "local.sandbox.allow"
HOSTS_SETTING = "local.sandbox.hosts"
SECRETS_SETTING = "local.secrets"
DEFAULT_PORTS = (80, 443)
PLACEHOLDER_PREFIX = "rtmcp_ph_"
_PLACEHOLDER = re.compile(r"rtmcp_ph_[0-9a-f]{32}")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# Headers that frame the message or belong to one hop: a secret set there would break the request.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"}

# A wildcard over a public suffix lets anyone who can register a name under it receive the sandbox's traffic.
# Not the whole Public Suffix List (no dependency for it): two-label bases such as `*.com` are refused by shape,
# `*.co.xx`-style country second levels by the heuristic below, and these common multi-label suffixes by name.
_SECOND_LEVELS = {"ac", "co", "com", "edu", "go", "gob", "gov", "ltd", "mil", "ne", "net", "nom", "or", "org", "plc"}
PUBLIC_SUFFIXES = frozenset(
    {
        "appspot.com",
        "azurewebsites.net",
        "blogspot.com",
        "cloudfront.net",
        "fly.dev",
        "github.io",
        "gitlab.io",
        "herokuapp.com",
        "netlify.app",
        "ngrok-free.app",
        "ngrok.io",
        "onrender.com",
        "pages.dev",
        "pythonanywhere.com",
        "readthedocs.io",
        "repl.co",
        "s3.amazonaws.com",
        "vercel.app",
        "web.app",
        "firebaseapp.com",
        "workers.dev",
        "me.uk",
        "net.uk",
        "sch.uk",
        "nhs.uk",
        "police.uk",
        "co.com",
        "eu.com",
        "uk.com",
        "us.com",
    }
)


class Refused(Exception):
    """A request the policy does not let out. `target` is "host:port" as asked; the message is the line the
    client gets (never a secret's value)."""

    def __init__(self, target: str, message: str, proxy_error: str = "http_request_denied") -> None:
        super().__init__(message)
        self.target = target
        self.message = message
        self.proxy_error = proxy_error  # the RFC 9209 Proxy-Status error it is answered with


def parse_address(text: str) -> IPAddress | None:
    """The address `text` spells (IPv4, or IPv6 with or without brackets; an IPv4-mapped IPv6 address is its
    IPv4 address), or None if it is not an address."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_host(text: str) -> str:
    """The one spelling a host is matched by: lower case, no trailing dot, an address in its compressed form.
    Raises ValueError for anything that is neither a DNS name nor an address (so `0x7f.1` or `2130706433`,
    which resolvers read as 127.0.0.1, are not names)."""
    address = parse_address(text)
    if address is not None:
        return str(address)
    host = text.lower().removesuffix(".")
    if not host.isascii():
        raise ValueError(f"{text!r} is not an ASCII host name (write it in punycode, xn--…)")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{text!r} is not a valid host name")
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        raise ValueError(f"{text!r} is neither a host name nor an IP address")
    return host


def authority(host: str, port: int) -> str:
    """ "host:port", with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class HostPattern:
    """One `allow` (or secret `hosts`) entry: a name, `*.domain` (its subdomains, not the domain itself), or an
    address; with a port, or none for 80 and 443."""

    text: str
    host: str  # the name, the wildcard's domain, or the address's canonical spelling
    wildcard: bool = False
    address: IPAddress | None = None
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """Does this entry cover `host` (canonical) on `port`?"""
        if port != self.port and not (self.port is None and port in DEFAULT_PORTS):
            return False
        if self.wildcard:
            return parse_address(host) is None and host.endswith("." + self.host)
        return host == self.host

    def covers_host(self, other: HostPattern) -> bool:
        """Does this entry reach every host `other` names (ports aside)?"""
        if self.wildcard:
            return (other.host == self.host and other.wildcard) or other.host.endswith("." + self.host)
        return not other.wildcard and other.host == self.host


def parse_pattern(entry: object, where: str) -> HostPattern:
    """An `allow`-style entry: `host`, `*.domain`, an IPv4 address, `[IPv6]`, each with an optional `:port`."""
    if not isinstance(entry, str) or not entry:
        raise ValueError(f"{where}: {entry!r} is not a host (a string such as 'pypi.org' or '*.example.com:8443')")
    host_text, port = entry, None
    if "/" in entry:
        raise ValueError(
            f"{where}: {entry!r} is a URL or a path; give the host alone, with its port when it is not 80 or 443 "
            "(e.g. 'example.com' or 'example.com:8443')"
        )
    if entry.startswith("["):
        close = entry.find("]")
        host_text, rest = entry[: close + 1], entry[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise ValueError(
                f"{where}: {entry!r} is malformed (an IPv6 entry reads [2001:db8::1] or [2001:db8::1]:443)"
            )
        port_text: str | None = rest[1:] if rest else None
    elif entry.count(":") > 1:
        raise ValueError(f"{where}: {entry!r}: write an IPv6 address in brackets, [2001:db8::1] or [2001:db8::1]:443")
    else:
        host_text, _, port_text = entry.partition(":")
        port_text = port_text if ":" in entry else None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{where}: {entry!r} has an invalid port (1-65535)")
        port = int(port_text)
    if host_text.startswith("[") and parse_address(host_text) is None:
        raise ValueError(f"{where}: {entry!r} is not an IPv6 address")
    address = parse_address(host_text)
    if address is not None:
        return HostPattern(entry, str(address), address=address, port=port)
    wildcard = host_text.startswith("*.")
    name = host_text[2:] if wildcard else host_text
    if host_text == "*" or "*" in name:
        raise ValueError(f"{where}: {entry!r} is too broad or malformed (a wildcard is '*.domain' with a domain)")
    try:
        name = canonical_host(name)
    except ValueError as error:
        raise ValueError(f"{where}: {entry!r}: {error}") from None
    if wildcard and parse_address(name) is None:
        labels = name.split(".")
        if len(labels) < 2 or name in PUBLIC_SUFFIXES or (len(labels) == 2 and _country_second_level(labels)):
            raise ValueError(
                f"{where}: {entry!r} is too broad: '*.{name}' would match anyone's domain under a public suffix; "
                f"list the domains themselves (e.g. '*.example.{name}')"
            )
    elif wildcard:
        raise ValueError(f"{where}: {entry!r}: a wildcard cannot cover an IP address")
    return HostPattern(entry, name, wildcard=wildcard, port=port)


def _country_second_level(labels: Sequence[str]) -> bool:
    return labels[0] in _SECOND_LEVELS and len(labels[1]) == 2 and labels[1].isalpha()


@dataclass(frozen=True)
class Secret:
    """A credential the proxy adds on the way out. Inside the sandbox `variable` holds `placeholder`; the proxy
    puts `value` in its place only in requests to `hosts`."""

    name: str
    variable: str
    placeholder: str
    value: str = field(repr=False)
    hosts: tuple[HostPattern, ...]
    header: str | None = None
    format: str = "{value}"
    body: bool = False

    def is_for(self, host: str, port: int) -> bool:
        return any(pattern.matches(host, port) for pattern in self.hosts)

    def header_value(self) -> str:
        return self.format.replace("{value}", self.value)


_SECRET_KEYS = {"value", "value_env", "variable", "hosts", "header", "format", "body", "placeholder"}


def parse_secret(name: object, data: object) -> Secret:
    """One `[local.secrets.NAME]` table (with the real `value` added by whoever read it)."""
    where = f"{SECRETS_SETTING}.{name}"
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise ValueError(f"{SECRETS_SETTING}: {name!r} is not a secret name (letters, digits, '_', '.', '-')")
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a table")
    unknown = set(data) - _SECRET_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_SECRET_KEYS)}")
    value = data.get("value")
    # The message never repeats the value: it may be (part of) the secret.
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        raise ValueError(f"{where}.value must be a non-empty string of printable ASCII (no line breaks)")
    variable = data.get("variable", data.get("value_env", name))
    if not isinstance(variable, str) or not _VARIABLE.fullmatch(variable):
        raise ValueError(f"{where}: {variable!r} is not an environment variable name")
    hosts = data.get("hosts")
    if not isinstance(hosts, list | tuple) or not hosts:
        raise ValueError(f"{where}.hosts must be a non-empty list of hosts (same forms as {ALLOW_SETTING})")
    header = data.get("header")
    if header is not None and (
        not isinstance(header, str) or not _HEADER_NAME.fullmatch(header) or header.lower() in _RESERVED_HEADERS
    ):
        raise ValueError(f"{where}.header: {header!r} is not a header the proxy can set")
    form = data.get("format", "{value}")
    if not isinstance(form, str) or not _only_value_field(form) or not (form.isascii() and form.isprintable()):
        raise ValueError(f"{where}.format: {form!r} must contain '{{value}}' and no other {{field}}")
    body = data.get("body", False)
    if not isinstance(body, bool):
        raise ValueError(f"{where}.body must be true or false")
    placeholder = data.get("placeholder") or PLACEHOLDER_PREFIX + random.token_hex(16)
    if not isinstance(placeholder, str) or not _PLACEHOLDER.fullmatch(placeholder):
        raise ValueError(f"{where}.placeholder must read {PLACEHOLDER_PREFIX}<32 hex digits>")
    patterns = tuple(parse_pattern(entry, f"{where}.hosts") for entry in hosts)
    return Secret(name, variable, placeholder, value, patterns, header, form, body)


def _only_value_field(form: str) -> bool:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(form) if f is not None]
    except ValueError:
        return False
    return fields == ["value"]


@dataclass(frozen=True)
class Policy:
    """The allow-list, the fixed name → address map and the secrets, checked as a whole."""

    allow: tuple[HostPattern, ...] = ()
    hosts: Mapping[str, IPAddress] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()

    @classmethod
    def parse(
        cls,
        allow: Iterable[object] = (),
        hosts: Mapping[str, object] | None = None,
        secrets: Mapping[str, object] | None = None,
    ) -> Policy:
        """The policy these settings describe; ValueError naming the first bad entry."""
        if isinstance(allow, str | bytes):
            raise ValueError(f"{ALLOW_SETTING} must be a list of hosts, not a string")
        patterns = tuple(parse_pattern(entry, ALLOW_SETTING) for entry in allow)
        fixed: dict[str, IPAddress] = {}
        for name, target in (hosts or {}).items():
            address = parse_address(target) if isinstance(target, str) else None
            if address is None:
                raise ValueError(f"{HOSTS_SETTING}.{name}: {target!r} is not an IP address")
            try:
                canonical = canonical_host(name)
            except ValueError as error:
                raise ValueError(f"{HOSTS_SETTING}: {error}") from None
            if parse_address(canonical) is not None:
                raise ValueError(f"{HOSTS_SETTING}: {name!r} is an address, not a name")
            fixed[canonical] = address
        parsed = tuple(parse_secret(name, data) for name, data in (secrets or {}).items())
        _check_secrets(parsed, patterns)
        return cls(patterns, fixed, parsed)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Policy:
        unknown = set(data) - {"allow", "hosts", "secrets"}
        if unknown:
            raise ValueError(f"unknown egress policy key(s): {sorted(unknown)}")
        return cls.parse(data.get("allow", ()), data.get("hosts"), data.get("secrets"))

    @property
    def named_addresses(self) -> frozenset[IPAddress]:
        """The addresses the operator wrote down (in `allow` or as a `hosts` target): reachable even when
        private, loopback or link-local."""
        literal = {p.address for p in self.allow if p.address is not None}
        return frozenset(literal | set(self.hosts.values()))

    def check(self, host: str, port: int) -> None:
        """Raise Refused unless `allow` covers `host` (canonical) on `port`."""
        if any(pattern.matches(host, port) for pattern in self.allow):
            return
        target = authority(host, port)
        if parse_address(host) is not None:
            raise Refused(
                target,
                f"runtimes-mcp: {target} is an IP address not listed in {ALLOW_SETTING} (only addresses listed "
                "there literally are reachable); use the host's name, or ask the operator to add the address",
            )
        raise Refused(
            target,
            f"runtimes-mcp: {target} is not in {ALLOW_SETTING} (the sandbox's network is an allow-list); "
            "ask the operator to add it",
        )

    def secrets_for(self, host: str, port: int) -> tuple[Secret, ...]:
        return tuple(secret for secret in self.secrets if secret.is_for(host, port))

    def environment(self) -> dict[str, str]:
        """Each secret's variable → its placeholder (what the sandbox gets instead of the value)."""
        return {secret.variable: secret.placeholder for secret in self.secrets}


def _check_secrets(secrets: Sequence[Secret], allow: Sequence[HostPattern]) -> None:
    variables: dict[str, str] = {}
    for secret in secrets:
        other = variables.setdefault(secret.variable, secret.name)
        if other != secret.name:
            raise ValueError(f"{SECRETS_SETTING}.{secret.name}: {other} already uses the variable {secret.variable}")
        for pattern in secret.hosts:
            covering = [entry for entry in allow if entry.covers_host(pattern)]
            if not covering:
                raise ValueError(
                    f"{SECRETS_SETTING}.{secret.name}.hosts: {pattern.text!r} is not in {ALLOW_SETTING}, so the "
                    "secret could never be sent there; add it to the allow-list too"
                )
            allowed = {port for entry in covering for port in ((entry.port,) if entry.port else DEFAULT_PORTS)}
            if not allowed & ({pattern.port} if pattern.port else set(DEFAULT_PORTS)):
                on = ", ".join(map(str, sorted(allowed)))
                raise ValueError(
                    f"{SECRETS_SETTING}.{secret.name}.hosts: {pattern.text!r} is for port {pattern.port or '80 or 443'}"
                    f", but {ALLOW_SETTING} lets it out only on {on}, so the secret could never be sent; give the port"
                    f" it is allowed on, e.g. {pattern.text.rsplit(':', 1)[0] if pattern.port else pattern.text}:"
                    f"{min(allowed)}"
                )
    placeholders = [secret.placeholder for secret in secrets]
    if len(set(placeholders)) != len(placeholders):
        raise ValueError(f"{SECRETS_SETTING}: two secrets have the same placeholder")
