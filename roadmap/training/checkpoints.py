"""Checkpoints that a kill cannot tear, and a resume that trusts only a checkpoint it has read back.

Lightning saves every checkpoint through its CheckpointIO plugin. Its own (TorchCheckpointIO) writes through an
fsspec transaction: a temporary file in the system's temp folder, moved into place unsynced, which is a copy into the
checkpoint's name, not a rename, where that folder is another file system. `AtomicCheckpointIO` writes each one to a
temporary file in the checkpoints/ folder itself, syncs it and renames it into place (records.atomic_write), so that a
kill or a full disk during a save leaves the checkpoints as they were.

A job continued after a kill resumes from the newest checkpoint of its folder that loads and holds what the run
restores (`newest_sound`). One that does not (written by an older version in place, cut by a full disk, copied in
part) is moved to checkpoints/unsound/ with a warning naming it and why, and the next older one is tried; with none
left the job starts afresh. The last.ckpt link is never followed: its target is a checkpoint of the folder like the
others, and Lightning re-links it at the next save.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from roadmap.results.records import atomic_write

log = logging.getLogger(__name__)

# What resuming reads: Lightning's model, optimizer, schedule, loops and callbacks (EMA, Recorder) states, and the
# module's loss curve and random number generators (roadmap/training/module.py).
REQUIRED = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks", "epoch", "global_step",
            "loss_curve", "rng_states")
UNSOUND = "unsound"  # checkpoints/unsound/: checkpoints that cannot be resumed from, kept for a look
NAMED_STEP = re.compile(r"step=(\d+)")  # Lightning's file names: epoch=3-step=156.ckpt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoints, written to a synced temporary file beside the target, then renamed."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options; got {storage_options!r}")
        atomic_write(Path(path), lambda f: torch.save(checkpoint, f))


def read(path: Path) -> dict[str, Any]:
    """The checkpoint as Lightning loads it (torch.load, weights only), its tensors mapped from the file rather than
    read, so that checking a checkpoint of a large network costs little."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def flaw(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be resumed from, or None when it can: it must load, hold every key a resume
    restores, and be at the step its file name says."""
    try:
        checkpoint = read(path)
    except Exception as error:  # a torn zip archive, a pickle cut short, an empty file: each its own error
        return f"it does not load ({type(error).__name__}: {' '.join(str(error).split())})"
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}, not a checkpoint"
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        return f"it lacks {', '.join(missing)}"
    step = checkpoint["global_step"]
    named = NAMED_STEP.search(path.name)
    if not isinstance(step, int) or step < 0 or (named is not None and int(named[1]) != step):
        return f"its global_step is {step!r}, not the step of its name"
    return None


def newest_sound(folder: Path) -> Path | None:
    """The newest checkpoint in `folder` that a run can resume from, or None. Those newer that cannot are moved to
    `folder`/unsound/, each with a warning. Run only by the job's one writer (roadmap/training/lock.py): it also removes
    the temporary files of saves a kill interrupted."""
    if not folder.is_dir():
        return None
    remove_unfinished_writes(folder)
    saved = [path for path in folder.glob("*.ckpt") if path.is_file() and not path.is_symlink()]
    for path in sorted(saved, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True):
        reason = flaw(path)
        if reason is None:
            return path
        aside = folder / UNSOUND / path.name
        aside.parent.mkdir(exist_ok=True)
        os.replace(path, aside)
        log.warning("%s cannot be resumed from: %s. Moved to %s; trying the checkpoint before it.", path, reason, aside)
    return None


def unsound(folder: Path) -> list[Path]:
    """The checkpoints of `folder` found unsound and moved aside, in name order."""
    return sorted((folder / UNSOUND).glob("*.ckpt"))


def training_finished(path: Path, epochs: int) -> bool:
    """Whether the checkpoint at `path` was saved after the last of `epochs` epochs (and its validation): its job
    has nothing left to train, only its record to write. Read from Lightning's fit-loop state, whose `done` it is."""
    progress = read(path)["loops"]["fit_loop"]["epoch_progress"]["current"]
    return progress["processed"] >= epochs


def unlink_links(folder: Path) -> None:
    """Remove the links of `folder` (last.ckpt) before training starts or resumes there: Lightning links last.ckpt
    afresh at its next save, and, finding one there that the resumed checkpoint does not name (or one left dangling by
    a checkpoint moved aside, which the new save brings back to life), would write last-v1.ckpt beside it."""
    for path in folder.glob("*.ckpt"):
        if path.is_symlink():
            path.unlink()


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files of atomic writes (records.atomic_write's `.<name>.<random>.tmp`) that a kill left in
    `folder`: never a file anything reads."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)
