"""Issue 3's figures: the webhook relay's throughput, its idle latency, and losing nothing when
the worker and Redis are killed in the middle of a burst.

    uv run python -m bench.relay [--events 10000] [--subscriptions 3] [--latency-samples 100]

What runs, all on this machine: a fresh database (`rapport_bench_relay`), a Redis server of its
own (no persistence, so killing it loses the queue), the real worker (`rapport worker`, default
settings: 200 deliveries in flight, 16 per subscription), and a receiver process
(bench/webhook_receiver.py) that verifies every signature and de-duplicates on `webhook-id`.
This process plays the API: it commits events through the app's own outbox (`events.emit`,
with a contact as the API returns it as `data`), and wakes the relay after each commit exactly
as the API does.

1. Idle latency: single-event transactions spaced --spacing apart; per delivery, receiver
   arrival time minus the moment the commit returned (same clock). Target p95 < 1 s.
2. Burst: --events events committed in transactions of --batch, to --subscriptions
   subscriptions on the receiver. Target: all delivered within 20 s of the first commit.
   Baseline in the same run: this process sending the same number of signed POSTs to the same
   receiver with the relay's concurrency (16 per subscription) and nothing else to do: the
   ceiling of the receiver and the HTTP stack. Prints relay rate / bare rate.
3. Chaos: another burst, committed over a few seconds; once a third of it has arrived, the
   worker and Redis are killed (SIGKILL) while commits continue; then both start again. Every
   event must reach every subscription (at least once; the receiver sees each exactly once after
   de-duplication). Prints duplicates and the time to full delivery after the restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from bench import common

DATABASE_URL = os.environ.get(
    "RAPPORT_BENCH_RELAY_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/rapport_bench_relay"
)
REDIS_PORT = common.free_port()
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
RECEIVER_PORT = common.free_port()
SECRETS_FILE = common.WORK_DIR / "relay-secrets.json"

common.use_app_environment(
    RAPPORT_DATABASE_URL=DATABASE_URL,
    RAPPORT_REDIS_URL=REDIS_URL,
    RAPPORT_WEBHOOKS_ALLOW_HTTP="true",
    RAPPORT_WEBHOOKS_ALLOW_LOOPBACK="true",
    RAPPORT_QUEUE_NAME="rapport:bench-relay",
)

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from app.core import events, signatures  # noqa: E402
from app.core.db import create_engine, create_session_factory, drop_database, ensure_database  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.core.redis import create_job_queue  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.main import create_app  # noqa: E402

WORKER_ENV = {
    **common.app_environment(),
    "RAPPORT_DATABASE_URL": DATABASE_URL,
    "RAPPORT_REDIS_URL": REDIS_URL,
    "RAPPORT_WEBHOOKS_ALLOW_HTTP": "true",
    "RAPPORT_WEBHOOKS_ALLOW_LOOPBACK": "true",
    "RAPPORT_QUEUE_NAME": "rapport:bench-relay",
    "RAPPORT_LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
}


class Process:
    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.name, self.command, self.env = name, command, {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (common.WORK_DIR / f"relay-{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=common.PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def contact_data(i: int) -> dict[str, Any]:
    """A contact as the API returns it: the `data` of a real `contact.created` event."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {
        "id": str(uuid.uuid4()), "first_name": "伟", "last_name": f"张{i}", "title": "采购经理",
        "email": f"zhang.wei.{i}@example.com", "phone": f"+86138{i:08d}", "additional_emails": [],
        "additional_phones": [], "company_id": None, "address_line1": "南京西路 1266 号", "address_line2": None,
        "city": "上海", "region": "上海", "postal_code": "200040", "country": "CN", "source": "api",
        "lifecycle_stage": "lead", "owner_id": None, "tags": ["vip", "华东"], "external_id": f"ERP-{i}",
        "custom_fields": {}, "email_opt_in": False, "email_opt_in_at": None, "email_opt_in_source": None,
        "created_at": now, "updated_at": now, "archived_at": None, "version": 1, "full_name": f"张{i}伟",
    }  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.redis = Process("redis", ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"])
        self.worker = Process("worker", ["uv", "run", "--frozen", "rapport", "worker"], WORKER_ENV)
        self.receiver = Process(
            "receiver",
            [sys.executable, "-m", "bench.webhook_receiver", "--port", str(RECEIVER_PORT),
             "--secrets-file", str(SECRETS_FILE)],
        )  # fmt: skip
        self.receiver_url = f"http://127.0.0.1:{RECEIVER_PORT}"
        self.secrets: dict[str, str] = {}
        self.organization_id: uuid.UUID | None = None

    async def setup(self) -> None:
        common.WORK_DIR.mkdir(parents=True, exist_ok=True)
        await drop_database(DATABASE_URL)
        await ensure_database(DATABASE_URL)
        await asyncio.to_thread(upgrade, DATABASE_URL)
        self.redis.start()
        await asyncio.sleep(0.5)
        self.engine = create_engine(get_settings(), pool_size=4)
        self.sessions = create_session_factory(self.engine)
        self.queue = create_job_queue(get_settings())
        self.waker = events.RelayWaker(self.queue, queue_name=get_settings().queue_name)
        self.waker.start()
        events.add_commit_listener(self.waker.wake)
        await self.subscribe()
        self.receiver.start()
        await self.wait_for_receiver()

    async def subscribe(self) -> None:
        """Signs up and subscribes through the API itself (the SSRF guard and all)."""
        app = create_app(get_settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                signup = await client.post(
                    "/api/v1/auth/signup",
                    json={"organization_name": "Relay bench", "email": "relay@bench.cn",
                          "password": "bench passphrase 2026", "full_name": "王芳"},
                )  # fmt: skip
                signup.raise_for_status()
                self.organization_id = uuid.UUID(signup.json()["organization"]["id"])
                headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
                for n in range(self.args.subscriptions):
                    created = await client.post(
                        "/api/v1/webhooks",
                        headers=headers,
                        json={"url": f"{self.receiver_url}/s{n}", "events": ["contact.*"]},
                    )
                    created.raise_for_status()
                    self.secrets[f"/s{n}"] = created.json()["secret"]
        SECRETS_FILE.write_text(json.dumps(self.secrets))

    async def wait_for_receiver(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    (await client.get(self.receiver_url + "/stats")).raise_for_status()
                    return
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    async def receiver_get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            return (await client.get(self.receiver_url + path)).json()

    async def reset_receiver(self) -> None:
        async with httpx.AsyncClient() as client:
            await client.post(self.receiver_url + "/reset")

    async def commit_events(self, count: int, first: int) -> float:
        """Commits `count` contact.created events in one transaction; returns when it returned."""
        assert self.organization_id is not None
        async with self.sessions() as session, session.begin():
            for i in range(first, first + count):
                data = contact_data(i)
                events.emit(
                    session,
                    organization_id=self.organization_id,
                    type="contact.created",
                    entity_type="contact",
                    entity_id=uuid.UUID(data["id"]),
                    data=data,
                    actor=events.SYSTEM,
                )
        return time.time()

    async def wait_for_deliveries(self, expected: int, within: float) -> float:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            stats = await self.receiver_get("/stats")
            if sum(stats["unique"].values()) >= expected:
                return time.time()
            await asyncio.sleep(0.05)
        raise RuntimeError(f"only {sum(stats['unique'].values())} of {expected} deliveries arrived in {within} s")

    async def latency(self) -> dict[str, Any]:
        await self.reset_receiver()
        committed: dict[int, float] = {}
        for n in range(self.args.latency_samples):
            committed[n] = await self.commit_events(1, 1_000_000 + n)
            await asyncio.sleep(self.args.spacing * random.uniform(0.5, 1.5))
        await self.wait_for_deliveries(self.args.latency_samples * self.args.subscriptions, 60)
        arrivals = await self.receiver_get("/arrivals")
        # Events and arrivals pair up in position order: the n-th event's id is the n-th smallest.
        ids = sorted({i for per_path in arrivals.values() for i in per_path}, key=lambda i: uuid.UUID(i).bytes)
        samples = [per_path[i] - committed[n] for per_path in arrivals.values() for n, i in enumerate(ids)]
        return {"commit_to_delivery_ms": common.summary_ms(samples)}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of the worker, the receiver, PostgreSQL and Redis (all their processes)."""
        import psutil

        used: dict[str, float] = {"worker": 0.0, "receiver": 0.0, "postgres": 0.0, "redis": 0.0}
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            command = " ".join(process.info["cmdline"] or [])
            times = process.info["cpu_times"]
            if times is None:
                continue
            if "rapport worker" in command:
                key = "worker"
            elif "bench.webhook_receiver" in command:
                key = "receiver"
            elif (process.info["name"] or "").startswith("postgres"):
                key = "postgres"
            elif "redis-server" in (process.info["name"] or "") and str(REDIS_PORT) in command:
                key = "redis"
            else:
                continue
            used[key] += times.user + times.system
        return used

    async def burst(self) -> dict[str, Any]:
        await self.reset_receiver()
        total = self.args.events
        cpu_before = self.cpu_seconds()
        started = time.time()
        for first in range(0, total, self.args.batch):
            last_commit = await self.commit_events(min(self.args.batch, total - first), first)
        finished = await self.wait_for_deliveries(total * self.args.subscriptions, 300)
        stats = await self.receiver_get("/stats")
        deliveries = total * self.args.subscriptions
        cpu_after = self.cpu_seconds()
        return {
            "cpu_ms_per_delivery": {
                key: round((cpu_after[key] - cpu_before[key]) * 1000 / deliveries, 3) for key in cpu_before
            },
            "events": total,
            "deliveries": deliveries,
            "commit_seconds": round(last_commit - started, 2),
            "seconds_from_first_commit": round(finished - started, 2),
            "seconds_after_last_commit": round(finished - last_commit, 2),
            "deliveries_per_second": round(deliveries / (finished - started)),
            "duplicates": stats["duplicates"],
            "bad_signatures": stats["bad_signatures"],
        }

    async def bare_sender(self) -> dict[str, Any]:
        """The ceiling: the same signed POSTs, same concurrency, nothing else to do."""
        await self.reset_receiver()
        total = self.args.events
        bodies = [json.dumps({"type": "contact.created", "data": contact_data(i)}).encode() for i in range(total)]
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for body in bodies:
            for path in self.secrets:
                queue.put_nowait((path, body))
        started = time.time()
        async with aiohttp.ClientSession() as http:

            async def sender() -> None:
                while not queue.empty():
                    path, body = queue.get_nowait()
                    message_id = str(uuid.uuid4())
                    headers = signatures.signed_headers([self.secrets[path]], message_id, body)
                    async with http.post(self.receiver_url + path, data=body, headers=headers) as reply:
                        await reply.read()

            await asyncio.gather(*(sender() for _ in range(16 * len(self.secrets))))
        finished = time.time()
        deliveries = total * len(self.secrets)
        return {"deliveries": deliveries, "seconds": round(finished - started, 2),
                "deliveries_per_second": round(deliveries / (finished - started))}  # fmt: skip

    async def chaos(self) -> dict[str, Any]:
        await self.reset_receiver()
        total, subscriptions = self.args.events, self.args.subscriptions
        expected = total * subscriptions
        offset = 2_000_000
        batches = list(range(0, total, self.args.batch))
        killed_at = restarted_at = None
        for n, first in enumerate(batches):
            await self.commit_events(min(self.args.batch, total - first), offset + first)
            await asyncio.sleep(0.25)  # a burst over a few seconds, so the kill lands in the middle of it
            if killed_at is None and n >= len(batches) // 4:
                stats = await self.receiver_get("/stats")
                while sum(stats["unique"].values()) < expected // 6:
                    await asyncio.sleep(0.05)
                    stats = await self.receiver_get("/stats")
                self.worker.kill()
                self.redis.kill()
                killed_at = time.time()
                arrived_at_kill = sum(stats["unique"].values())
        assert killed_at is not None
        await asyncio.sleep(2)
        self.redis.start()
        await asyncio.sleep(0.5)
        self.worker.start()
        restarted_at = time.time()
        finished = await self.wait_for_deliveries(expected, 300)
        stats = await self.receiver_get("/stats")
        return {
            "deliveries_expected": expected,
            "arrived_before_the_kill": arrived_at_kill,
            "unique_delivered": sum(stats["unique"].values()),
            "duplicates": stats["duplicates"],
            "bad_signatures": stats["bad_signatures"],
            "seconds_from_restart_to_all_delivered": round(finished - restarted_at, 2),
            "lost": expected - sum(stats["unique"].values()),
        }

    async def close(self) -> None:
        events.remove_commit_listener(self.waker.wake)
        await self.waker.stop()
        await self.queue.aclose()
        await self.engine.dispose()
        for process in (self.worker, self.receiver, self.redis):
            process.stop()


async def run(args: argparse.Namespace) -> None:
    bench = Bench(args)
    await bench.setup()
    result: dict[str, Any] = {"machine": common.machine_info(), "args": vars(args)}
    try:
        bench.worker.start()
        await asyncio.sleep(3)
        common.wait_until_quiet()
        print("1. idle latency …", flush=True)
        result["latency"] = await bench.latency()
        print(json.dumps(result["latency"]), flush=True)
        common.wait_until_quiet()
        print("2. burst …", flush=True)
        result["burst"] = await bench.burst()
        print(json.dumps(result["burst"]), flush=True)
        bench.worker.stop()  # the baseline gets the machine the relay had
        common.wait_until_quiet()
        print("   baseline: bare sender …", flush=True)
        result["baseline"] = await bench.bare_sender()
        print(json.dumps(result["baseline"]), flush=True)
        result["ratio_relay_to_bare"] = round(
            result["burst"]["deliveries_per_second"] / result["baseline"]["deliveries_per_second"], 2
        )
        bench.worker.start()
        await asyncio.sleep(3)
        print("3. chaos …", flush=True)
        result["chaos"] = await bench.chaos()
        print(json.dumps(result["chaos"]), flush=True)
    finally:
        await bench.close()
    latency = result["latency"]["commit_to_delivery_ms"]
    print(
        f"\nidle commit→delivery: p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms (target < 1000)\n"
        f"burst: {result['burst']['deliveries']} deliveries in {result['burst']['seconds_from_first_commit']} s "
        f"(target < 20), {result['burst']['deliveries_per_second']}/s = {result['ratio_relay_to_bare']} × the bare "
        f"sender's {result['baseline']['deliveries_per_second']}/s\n"
        f"chaos: {result['chaos']['lost']} lost, {result['chaos']['duplicates']} duplicates, all delivered "
        f"{result['chaos']['seconds_from_restart_to_all_delivered']} s after the restart"
    )
    print(f"saved {common.save_result('relay', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="events per transaction in a burst")
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between idle-latency events (mean)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
