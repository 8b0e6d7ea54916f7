"""The SSRF guard for outgoing webhook requests.

A webhook URL is chosen by a tenant, so without a guard it would let anyone make this server call
its own private network (the cloud metadata service, Redis, the database). Checking the URL's
host at subscription time is not enough: DNS answers change (rebinding), so the host is checked
again at delivery, and the check happens inside the resolver aiohttp connects with. The addresses
that pass are the very addresses aiohttp connects to; nothing looks the name up a second time.
aiohttp does not consult the resolver for literal IP hosts, so `post` checks those itself.
Redirects are never followed: a redirect is a new target the tenant did not subscribe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
MAX_BODY_BYTES = 2048

# A host whose last label is a number is an IPv4 address to browsers and to inet_aton
# ("2130706433", "0x7f000001", "127.1", "0177.0.0.1"); only the dotted-quad form is unambiguous,
# and aiohttp would hand the others to the socket layer without asking the resolver.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Ranges whose name makes a clearer reason than the generic "private" or "reserved".
_NAMED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv4Network("255.255.255.255/32"), "the broadcast address"),
    (ipaddress.IPv4Network("0.0.0.0/8"), "a 'this network' address"),
    (ipaddress.IPv4Network("100.64.0.0/10"), "a shared (CGNAT) address"),
    (ipaddress.IPv6Network("fc00::/7"), "a unique local address"),
)


class RefusedTarget(Exception):
    """A webhook target this server must not contact; `reason` is fit to show the tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    allow_http: bool = False
    allow_loopback: bool = False


_STRICT = TargetPolicy()


class GetAddrInfo(Protocol):
    """`loop.getaddrinfo`, or a stand-in with its signature, so tests need no DNS."""

    async def __call__(
        self, host: str, port: int, *, family: int = ..., type: int = ..., proto: int = ..., flags: int = ...
    ) -> Sequence[tuple[int, int, int, str, tuple[Any, ...]]]: ...


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress, policy: TargetPolicy) -> str | None:
    """Why `address` must not be contacted, or None when it may be.

    Anything not globally routable is refused, and the ranges with a well-known meaning say so in
    the reason. Loopback is the one exception a policy can make, for local development and tests.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{address} is an IPv4-mapped IPv6 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # Judged strictly: an IPv6 wrapper must not become a way to reach loopback.
            inner = address_refusal(embedded, _STRICT)
            if inner is not None:
                return f"{address} embeds a refused IPv4 address ({inner})"
            # NAT64 lies in ::/8, which ipaddress calls reserved, yet DNS64 networks hand these
            # addresses out for ordinary public IPv4 hosts.
            if address in _NAT64:
                return None
    if address.is_loopback:
        return None if policy.allow_loopback else f"{address} is a loopback address"
    kind = next((label for network, label in _NAMED_NETWORKS if address in network), None)
    if kind is None:
        if address.is_unspecified:
            kind = "the unspecified address"
        elif address.is_multicast:
            kind = "a multicast address"
        elif address.is_link_local:
            kind = "a link-local address"
        elif address.is_reserved:
            kind = "a reserved address"
        elif address.is_private:
            kind = "a private address"
        elif not address.is_global:
            kind = "not a public address"
    return None if kind is None else f"{address} is {kind}"


def _parse_url(url: str, policy: TargetPolicy) -> tuple[URL, str, int, IPAddress | None]:
    if len(url) > MAX_URL_LENGTH:
        raise RefusedTarget(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError) as error:
        raise RefusedTarget(f"the URL is not valid: {error}") from None
    scheme = parsed.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_http):
        allowed = "http or https" if policy.allow_http else "https"
        raise RefusedTarget(f"the URL scheme must be {allowed}")
    host = (parsed.raw_host or "").lower()
    if not host:
        raise RefusedTarget("the URL has no host")
    if parsed.user is not None or parsed.password is not None:
        raise RefusedTarget("the URL must not carry credentials (user:password@)")
    literal = _literal_address(host)
    looks_literal = ":" in host or _NUMERIC_LABEL.fullmatch(host.removesuffix(".").rsplit(".", 1)[-1])
    if literal is None and looks_literal:
        raise RefusedTarget(f"{host} is not a canonical IP address")
    if port is None or not 0 < port < 65536:
        raise RefusedTarget(f"port {port} is not valid")
    return parsed, host, port, literal


def parse_target(url: str, policy: TargetPolicy) -> tuple[str, int]:
    """The (host, port) a webhook URL points at, refusing URLs the policy does not allow."""
    _, host, port, _ = _parse_url(url, policy)
    return host, port


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve_checked(
    host: str, port: int, policy: TargetPolicy, *, getaddrinfo: GetAddrInfo | None = None
) -> list[IPAddress]:
    """The addresses of `host`, all allowed by the policy, from one lookup.

    One refused address refuses the host: a name that mixes a public and a private address would
    otherwise reach the private one whenever the public one fails to connect.
    """
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        lookup: GetAddrInfo = getaddrinfo or asyncio.get_running_loop().getaddrinfo
        try:
            infos = await lookup(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise RefusedTarget(f"{host} does not resolve") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise RefusedTarget(f"{host} does not resolve")
    for address in addresses:
        reason = address_refusal(address, policy)
        if reason is not None:
            raise RefusedTarget(reason if literal is not None else f"{host} resolves to a refused address: {reason}")
    return addresses


async def check_url(url: str, policy: TargetPolicy, *, getaddrinfo: GetAddrInfo | None = None) -> None:
    """Refuse a webhook URL when it is created or changed, so the tenant hears at once."""
    host, port = parse_target(url, policy)
    await resolve_checked(host, port, policy, getaddrinfo=getaddrinfo)


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver whose answers are the checked addresses, so the check cannot be raced."""

    def __init__(self, policy: TargetPolicy, *, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._policy = policy
        self._getaddrinfo = getaddrinfo

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self._policy, getaddrinfo=self._getaddrinfo)
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            if family in (socket.AF_UNSPEC, address_family):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=str(address),
                        port=port,
                        family=address_family,
                        proto=socket.IPPROTO_TCP,
                        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    )
                )
        if not results:
            raise RefusedTarget(f"{host} has no address of the wanted family")
        return results

    async def close(self) -> None:
        """Nothing to release: lookups go through the event loop's resolver."""


def open_session(
    policy: TargetPolicy, *, timeout_seconds: float = 15.0, limit: int = 200, limit_per_host: int = 20
) -> aiohttp.ClientSession:
    """A session for webhook deliveries; use it with `post` and the same policy.

    The DNS cache is off so every connection is resolved (and checked) afresh; the environment's
    proxies are ignored because a proxy would connect to the unchecked name itself; cookies are
    dropped because receivers of different tenants may share a host.
    """
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy), use_dns_cache=False, limit=limit, limit_per_host=limit_per_host
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: str
    latency_ms: int
    retry_after_seconds: float | None


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP-date; a date already past means now."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def post(
    session: aiohttp.ClientSession, url: str, *, body: bytes, headers: Mapping[str, str], policy: TargetPolicy
) -> Reply:
    """POST a delivery, refusing a target the policy forbids; network errors propagate to the caller.

    Only the first bytes of the reply are read: they are kept for the delivery log, and a receiver
    must not be able to make a worker download an endless body.
    """
    parsed, _, _, literal = _parse_url(url, policy)
    if literal is not None:
        reason = address_refusal(literal, policy)
        if reason is not None:
            raise RefusedTarget(reason)
    started = time.perf_counter()
    async with session.post(parsed, data=body, headers=headers, allow_redirects=False) as response:
        kept = bytearray()
        while len(kept) < MAX_BODY_BYTES:
            chunk = await response.content.read(MAX_BODY_BYTES - len(kept))
            if not chunk:
                break
            kept += chunk
        latency_ms = round((time.perf_counter() - started) * 1000)
        return Reply(
            status=response.status,
            headers=response.headers,
            body=kept.decode("utf-8", errors="replace"),
            latency_ms=latency_ms,
            retry_after_seconds=_retry_after_seconds(response.headers.get("Retry-After")),
        )
