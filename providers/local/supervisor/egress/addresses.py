"""Where a destination is: the proxy resolves names itself (the fixed map first, then DNS) and keeps only addresses
the sandbox may reach, then connects to exactly those, so a name re-pointed after the check (DNS rebinding) gains
nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

from .policy import ALLOW_SETTING, HOSTS_SETTING, IPAddress, Policy, Refused, authority, parse_address

# (host, port) → the addresses a name has; the default asks the system resolver through the event loop.
Lookup = Callable[[str, int], Awaitable[Sequence[str]]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class LookupFailed(Exception):
    """A name that does not resolve (or not in time): the request fails, but the policy did not refuse it."""


async def system_lookup(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address carries (mapped, 6to4, NAT64), which is where it leads."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


def forbidden_kind(address: IPAddress) -> str | None:
    """Why the sandbox may not reach `address` unless the operator named it ("loopback", "link-local", ...), or
    None for a public address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        kind = forbidden_kind(inner)
        return f"{kind} (inside an IPv6 address)" if kind else None
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (where cloud metadata services answer)"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_reserved:
        return "reserved"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


class Resolver:
    """Turns an allowed destination into the addresses the proxy may connect to, or refuses it."""

    def __init__(self, policy: Policy, lookup: Lookup | None = None, timeout: float = 10.0) -> None:
        self._fixed = policy.hosts
        self._named = policy.named_addresses
        self._lookup = lookup or system_lookup
        self._timeout = timeout

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Addresses for `host` (canonical, already allowed by the policy) on `port`. An address literal and a
        name in the fixed map are the operator's own word; what DNS answers must be public or named."""
        literal = parse_address(host)
        if literal is not None:
            return [literal]
        if host in self._fixed:
            return [self._fixed[host]]
        try:
            async with asyncio.timeout(self._timeout):
                answers = await self._lookup(host, port)
        except (OSError, TimeoutError) as error:
            raise LookupFailed(f"runtimes-mcp: could not resolve {host}: {error or 'timed out'}") from None
        kept: list[IPAddress] = []
        refused: list[tuple[IPAddress, str]] = []
        for answer in answers:
            address = parse_address(answer.partition("%")[0])
            if address is None:
                continue
            kind = forbidden_kind(address)
            if kind is None or address in self._named:
                if address not in kept:
                    kept.append(address)
            else:
                refused.append((address, kind))
        if kept:
            return kept
        if refused:
            address, kind = refused[0]
            target = authority(host, port)
            raise Refused(
                target,
                f"runtimes-mcp: {target} resolves to {address}, a {kind} address the sandbox may not reach; the "
                f"operator can allow it by naming the address as {host}'s in {HOSTS_SETTING}, or in {ALLOW_SETTING}",
                "destination_ip_prohibited",
            )
        raise LookupFailed(f"runtimes-mcp: {host} has no address")
