"""Knob experiment: `rapport` with the app's modules imported and `gc.freeze()`d before it serves.

    uv run python -m bench.gc_freeze_launcher api --port 8300      (same arguments as `rapport`)

The API process holds a few hundred thousand long-lived objects (FastAPI, pydantic, SQLAlchemy
and the app's own modules); every full (generation 2) collection walks all of them and stops the
event loop meanwhile. Freezing them after import moves them out of the collector's reach, as a
one-line change at startup would. `bench.get_by_id --gc-freeze` starts the API through this to
measure the effect without touching the app. Set BENCH_GC_LOG=1 to log collections over 5 ms.
"""

from __future__ import annotations

import gc
import os
import sys
import time


def log_slow_collections() -> None:
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        elapsed = (time.perf_counter() - started[0]) * 1000
        if elapsed > 5:
            print(f"gc generation {info['generation']}: {elapsed:.1f} ms", file=sys.stderr, flush=True)

    gc.callbacks.append(callback)


def main() -> None:
    import app.main  # noqa: F401  (imports the whole app: routers, models, schemas)
    from app.cli import main as rapport

    if os.environ.get("BENCH_GC_LOG"):
        log_slow_collections()
    if os.environ.get("BENCH_GC_FREEZE", "1") == "1":
        gc.collect()
        gc.freeze()
    rapport()


if __name__ == "__main__":
    main()
