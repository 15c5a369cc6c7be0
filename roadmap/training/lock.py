"""One writer per job folder: a job holds its folder's lock while it runs, so that two copies of a study (a second
terminal, a cluster's requeue while the first copy lives) never write into one job at once.

The lock is filelock's FileLock: on Linux and macOS an flock(2) on `<job>/job.lock`, which the kernel releases when its
process ends however it ends, so a lock never outlives its holder and a killed job's folder is free at once. Beside it,
`job.lock.holder` names the process holding it (pid, host, since when), for the message of a process that finds the
folder taken. flock is not shared between machines on every network file system (Lustre without `-o flock` does not
share it); there two machines running one study lock nothing between them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from lightning.pytorch.utilities import rank_zero_only

from roadmap.results.records import atomic_write_text

LOCK = "job.lock"
HOLDER = "job.lock.holder"


class FolderHeld(RuntimeError):
    """The job's folder is locked by another live process, which is running that job."""

    def __init__(self, folder: Path) -> None:
        holder = folder / HOLDER
        who = holder.read_text().strip() if holder.is_file() else "a process that has not named itself yet"
        super().__init__(f"{folder} is held by {who}, which is running this job: skipped here")
        self.folder = folder


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock for the block, or raise FolderHeld at once if another process holds it.

    Only the process of global rank 0 locks: under srun every process of a job runs this job in its folder, and the
    others follow rank 0 (each of them writes nothing there)."""
    if rank_zero_only.rank != 0:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise FolderHeld(folder) from None
    try:
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_text(folder / HOLDER, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n")
        yield
    finally:
        (folder / HOLDER).unlink(missing_ok=True)
        lock.release()
