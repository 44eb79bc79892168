"""Worker processes of sweeps and searches: spawned, each with its share of the CPU threads.

Workers are *spawned* (never forked), so that no torch thread pool, CUDA context or open
SQLite connection of the parent is copied into them; each sets torch to
``cpu_count // workers`` threads, so that ``workers`` trainings together use the machine's
cores once.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` processes on this machine (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def limit_threads(threads: int) -> None:
    """Set this process's torch intra-op threads and keep Lightning's banners quiet (a pool
    initializer: the parent's logging and warning settings do not reach spawned workers)."""
    import torch

    from promoterlab.training.quiet import quiet_lightning

    torch.set_num_threads(threads)
    quiet_lightning()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each limited to :func:`threads_per_worker` threads."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=limit_threads, initargs=(threads_per_worker(workers),))
