"""`rapport serve` on a machine with nothing configured: embedded servers, migrations, API,
worker; SIGTERM stops everything it started; a second start reuses the data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import PASSWORD, unique_email

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env["RAPPORT_DATA_DIR"] = str(data_dir)
    env["RAPPORT_LOG_LEVEL"] = "WARNING"
    return env


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "rapport serve exited early"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("rapport serve did not become ready")


def _server_pids(data_dir: Path) -> list[int]:
    postgres = int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    registry = json.loads((data_dir / "redis" / "rapport.rdb.settings").read_text())
    redis = int(Path(registry["pidfile"]).read_text())
    return [postgres, redis]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


@pytest.mark.timeout(300)
def test_serve_starts_everything_and_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    env = _clean_env(data_dir)
    email = unique_email("serve")

    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        _wait_ready(base, first)
        signup = httpx.post(
            f"{base}/api/v1/auth/signup",
            json={"organization_name": "Acme", "email": email, "password": PASSWORD, "full_name": "You"},
            timeout=10,
        )
        assert signup.status_code == 201, signup.text
        assert httpx.get(f"{base}/docs", timeout=5).status_code == 200
        pids = _server_pids(data_dir)
        children = psutil.Process(first.pid).children(recursive=True)
        assert len(children) >= 2  # the API and the worker
    finally:
        _stop(first)
    banner = first.stderr.read().decode() if first.stderr else ""
    assert f"{base}/docs" in banner and "auth/signup" in banner
    assert first.returncode == 0
    assert not any(_alive(pid) for pid in pids), "embedded servers still running"
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)

    second = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(base, second)
        token = httpx.post(f"{base}/api/v1/auth/token", data={"username": email, "password": PASSWORD}, timeout=10)
        assert token.status_code == 200, "the second start lost the first start's data"
    finally:
        _stop(second)
