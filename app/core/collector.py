"""The garbage collector's policy for processes that do bulk work: the worker, an import's
checking process and the `rapport import` command.

CPython starts a young collection every 700 net new container objects, and a full one, over
every object the process holds, once ten middle ones have run and the long-lived objects have
grown by a quarter. A bulk job holds a chunk or two of rows (their ORM objects, bodies, audit and
event values: several hundred thousand containers) that live for a chunk each. With the default
thresholds a 100,000-row import ran about 8,400 young and 66 full collections, the full ones
taking about 200 ms each (a fifth of the import's time) and freeing almost nothing: those objects
go when their chunk does, by reference counting. Young collections still run a few times a
chunk, so cycles among a chunk's objects are still found young.
"""

from __future__ import annotations

import gc
from typing import Final

# Young collections every 50,000 net new containers, middle ones every 20 of those, full ones
# every 10 middle ones (about every 200,000 rows of an import).
BULK_WORK_THRESHOLDS: Final = (50_000, 20, 10)


def tune_for_bulk_work() -> None:
    gc.set_threshold(*BULK_WORK_THRESHOLDS)
