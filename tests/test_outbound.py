"""The SSRF guard for webhook deliveries.

Refusals are shown on the validator and on resolvers fed fixed answers, never by sending traffic:
the only server any test contacts listens on 127.0.0.1, and the end-to-end tests show that even it
is out of reach unless the policy allows loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from app.core.outbound import (
    GuardedResolver,
    RefusedTarget,
    TargetPolicy,
    address_refusal,
    check_url,
    open_session,
    parse_target,
    post,
    resolve_checked,
)

STRICT = TargetPolicy()
LOOPBACK = TargetPolicy(allow_loopback=True)
LOCAL_DEV = TargetPolicy(allow_http=True, allow_loopback=True)

LOOPBACK_ADDRESSES = ["127.0.0.1", "127.255.1.1", "::1"]
NEVER_ALLOWED = [
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "fe80::1",
    "fc00::1",
    "fd12::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "::",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "2001:db8::1",
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::", "64:ff9b::808:808"]


def infos(*addresses: str) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
    """getaddrinfo's answer for these addresses."""
    answer: list[tuple[int, int, int, str, tuple[Any, ...]]] = []
    for text in addresses:
        if ipaddress.ip_address(text).version == 6:
            answer.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (text, 443, 0, 0)))
        else:
            answer.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (text, 443)))
    return answer


class FakeDNS:
    """A getaddrinfo stand-in with fixed answers that records every lookup."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(
        self, host: str, port: int, *, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Sequence[tuple[int, int, int, str, tuple[Any, ...]]]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return infos(*self.answers[host])


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", LOOPBACK_ADDRESSES + NEVER_ALLOWED)
def test_refused_address(text: str) -> None:
    reason = address_refusal(ipaddress.ip_address(text), STRICT)
    assert reason is not None
    assert reason.startswith(str(ipaddress.ip_address(text)))


@pytest.mark.parametrize("text", NEVER_ALLOWED)
def test_allow_loopback_does_not_open_other_ranges(text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), LOOPBACK) is not None


@pytest.mark.parametrize("text", LOOPBACK_ADDRESSES)
def test_loopback_is_allowed_only_by_the_policy(text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), LOOPBACK) is None
    assert "loopback" in (address_refusal(ipaddress.ip_address(text), STRICT) or "")


@pytest.mark.parametrize("text", PUBLIC)
def test_public_address_is_allowed(text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), STRICT) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("100.64.0.1", "CGNAT"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("::", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("fd12::1", "unique local"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("2002:a00:1::", "embeds a refused IPv4 address (10.0.0.1 is a private address)"),
    ],
)
def test_reason_names_the_range(text: str, words: str) -> None:
    assert words in (address_refusal(ipaddress.ip_address(text), STRICT) or "")


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/hook", ("example.com", 443)),
        ("HTTPS://Hooks.Example.COM:8443/a?b=c", ("hooks.example.com", 8443)),
        ("https://[2606:4700:4700::1111]/x", ("2606:4700:4700::1111", 443)),
        ("https://[::1]/x", ("::1", 443)),
        ("https://bücher.example/", ("xn--bcher-kva.example", 443)),
    ],
)
def test_parse_target(url: str, expected: tuple[str, int]) -> None:
    assert parse_target(url, STRICT) == expected


def test_http_needs_the_setting() -> None:
    with pytest.raises(RefusedTarget, match="scheme must be https"):
        parse_target("http://example.com/", STRICT)
    assert parse_target("http://example.com/", TargetPolicy(allow_http=True)) == ("example.com", 80)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("example.com/hook", "scheme"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https:///hook", "no host"),
        ("https://", "no host"),
        ("https://example.com:0/", "port 0"),
        ("https://example.com:99999/", "not valid"),
        ("https://example.com\\@127.0.0.1/", "not valid"),
        ("https://2130706433/", "canonical"),
        ("https://0x7f000001/", "canonical"),
        ("https://0x7f.0.0.1/", "canonical"),
        ("https://0177.0.0.1/", "canonical"),
        ("https://127.1/", "canonical"),
        ("https://127.0.0.1./", "canonical"),
        ("https://example.com/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_parse_target_refuses(url: str, words: str) -> None:
    with pytest.raises(RefusedTarget) as refused:
        parse_target(url, TargetPolicy(allow_http=True, allow_loopback=True))
    assert words in refused.value.reason


async def test_numeric_forms_are_refused_by_resolution_too() -> None:
    """Should one slip past parsing, the resolver (glibc parses these without any DNS) maps it to loopback."""
    for host in ("2130706433", "0x7f000001"):
        with pytest.raises(RefusedTarget, match=r"127\.0\.0\.1 is a loopback address"):
            await resolve_checked(host, 443, STRICT)


# --- resolution ------------------------------------------------------------------------------


async def test_literal_is_checked_without_a_lookup() -> None:
    dns = FakeDNS({})
    with pytest.raises(RefusedTarget, match="::1 is a loopback address"):
        await check_url("https://[::1]/x", STRICT, getaddrinfo=dns)
    assert await resolve_checked("8.8.8.8", 443, STRICT, getaddrinfo=dns) == [ipaddress.ip_address("8.8.8.8")]
    assert dns.lookups == []


async def test_mixed_public_and_private_answer_refuses_the_host() -> None:
    dns = FakeDNS({"rebind.example": ["93.184.215.14", "10.0.0.5"]})
    with pytest.raises(RefusedTarget, match=r"rebind\.example resolves to a refused address: 10\.0\.0\.5 is a private"):
        await check_url("https://rebind.example/hook", STRICT, getaddrinfo=dns)
    assert dns.lookups == ["rebind.example"]


async def test_private_answer_is_refused_even_with_loopback_allowed() -> None:
    dns = FakeDNS({"metadata.example": ["169.254.169.254"]})
    with pytest.raises(RefusedTarget, match="link-local"):
        await check_url("http://metadata.example/", LOCAL_DEV, getaddrinfo=dns)


async def test_unresolvable_name_is_refused() -> None:
    with pytest.raises(RefusedTarget, match=r"nowhere\.example does not resolve"):
        await check_url("https://nowhere.example/", STRICT, getaddrinfo=FakeDNS({}))
    with pytest.raises(RefusedTarget, match="does not resolve"):
        await check_url("https://empty.example/", STRICT, getaddrinfo=FakeDNS({"empty.example": []}))


async def test_public_answer_is_deduplicated_in_order() -> None:
    dns = FakeDNS({"hooks.example": ["1.1.1.1", "2606:4700:4700::1111", "1.1.1.1", "8.8.8.8"]})
    addresses = await resolve_checked("hooks.example", 443, STRICT, getaddrinfo=dns)
    assert addresses == [ipaddress.ip_address(a) for a in ("1.1.1.1", "2606:4700:4700::1111", "8.8.8.8")]
    await check_url("https://hooks.example/x", STRICT, getaddrinfo=dns)
    assert dns.lookups == ["hooks.example", "hooks.example"]


async def test_guarded_resolver_returns_only_checked_addresses() -> None:
    dns = FakeDNS({"hooks.example": ["1.1.1.1", "2606:4700:4700::1111"], "mixed.example": ["1.1.1.1", "fd00::1"]})
    resolver = GuardedResolver(STRICT, getaddrinfo=dns)
    results = await resolver.resolve("hooks.example", 8443, family=socket.AF_UNSPEC)
    assert results == [
        {
            "hostname": "hooks.example",
            "host": "1.1.1.1",
            "port": 8443,
            "family": socket.AF_INET,
            "proto": socket.IPPROTO_TCP,
            "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
        },
        {
            "hostname": "hooks.example",
            "host": "2606:4700:4700::1111",
            "port": 8443,
            "family": socket.AF_INET6,
            "proto": socket.IPPROTO_TCP,
            "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
        },
    ]
    assert [r["host"] for r in await resolver.resolve("hooks.example", 443, family=socket.AF_INET6)] == [
        "2606:4700:4700::1111"
    ]
    with pytest.raises(RefusedTarget, match="unique local"):
        await resolver.resolve("mixed.example", 443, family=socket.AF_INET)
    await resolver.close()


# --- end to end, loopback only ---------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, Counter[str]]]:
    """A webhook receiver on 127.0.0.1 that counts the requests reaching each path."""
    hits: Counter[str] = Counter()
    retry_date = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)

    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        if request.path == "/redirect":
            raise web.HTTPFound("/target")
        if request.path == "/busy-seconds":
            return web.Response(status=503, headers={"Retry-After": "120"})
        if request.path == "/busy-date":
            return web.Response(status=429, headers={"Retry-After": retry_date})
        if request.path == "/busy-nonsense":
            return web.Response(status=429, headers={"Retry-After": "soon"})
        if request.path == "/big":
            return web.Response(body=b"x" * 100_000)
        echoed = f"{request.headers.get('X-Signature')} {(await request.read()).decode()}"
        return web.Response(text=echoed, headers={"X-Receiver": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


async def test_loopback_is_refused_before_any_traffic(receiver: tuple[int, Counter[str]]) -> None:
    port, hits = receiver
    policy = TargetPolicy(allow_http=True)
    async with open_session(policy) as session:
        for url in (
            f"http://127.0.0.1:{port}/",
            f"http://localhost:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/",
            f"http://2130706433:{port}/",
            f"http://0x7f000001:{port}/",
        ):
            with pytest.raises(RefusedTarget):
                await post(session, url, body=b"{}", headers={}, policy=policy)
    async with open_session(LOOPBACK) as session:
        with pytest.raises(RefusedTarget, match="scheme must be https"):
            await post(session, f"http://localhost:{port}/", body=b"{}", headers={}, policy=LOOPBACK)
    assert hits.total() == 0


async def test_guarded_session_refuses_even_without_the_literal_check(receiver: tuple[int, Counter[str]]) -> None:
    """The resolver itself is the guard for names: a plain session.post to localhost never connects."""
    port, hits = receiver
    async with open_session(TargetPolicy(allow_http=True)) as session:
        with pytest.raises(RefusedTarget, match="localhost resolves to a refused address"):
            await session.post(f"http://localhost:{port}/")
    assert hits.total() == 0


async def test_loopback_is_reached_when_allowed(receiver: tuple[int, Counter[str]]) -> None:
    port, hits = receiver
    async with open_session(LOCAL_DEV) as session:
        for url in (f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook"):
            reply = await post(session, url, body=b'{"a": 1}', headers={"X-Signature": "sig"}, policy=LOCAL_DEV)
            assert reply.status == 200
            assert reply.body == 'sig {"a": 1}'
            assert reply.headers["x-receiver"] == "yes"
            assert reply.retry_after_seconds is None
            assert reply.latency_ms >= 0
    assert hits == Counter({"/hook": 2})


async def test_redirect_is_returned_not_followed(receiver: tuple[int, Counter[str]]) -> None:
    port, hits = receiver
    async with open_session(LOCAL_DEV) as session:
        reply = await post(session, f"http://127.0.0.1:{port}/redirect", body=b"{}", headers={}, policy=LOCAL_DEV)
    assert reply.status == 302
    assert reply.headers["Location"] == "/target"
    assert hits == Counter({"/redirect": 1})


async def test_retry_after(receiver: tuple[int, Counter[str]]) -> None:
    port, _ = receiver
    async with open_session(LOCAL_DEV) as session:

        async def send(path: str) -> float | None:
            url = f"http://127.0.0.1:{port}{path}"
            return (await post(session, url, body=b"{}", headers={}, policy=LOCAL_DEV)).retry_after_seconds

        assert await send("/busy-seconds") == 120.0
        in_an_hour = await send("/busy-date")
        assert in_an_hour is not None
        assert 3500 < in_an_hour <= 3600
        assert await send("/busy-nonsense") is None


async def test_only_the_start_of_the_body_is_kept(receiver: tuple[int, Counter[str]]) -> None:
    port, _ = receiver
    async with open_session(LOCAL_DEV) as session:
        reply = await post(session, f"http://127.0.0.1:{port}/big", body=b"{}", headers={}, policy=LOCAL_DEV)
    assert reply.body == "x" * 2048
