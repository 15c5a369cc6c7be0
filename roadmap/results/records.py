"""Run records on disk: written atomically, so an interrupted write never leaves half a file; read, checked and
collected from run folders into an experiment's records/."""

import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from roadmap.config.ablation import STEP_MARK, run_name
from roadmap.steps import STEPS, roadmap_order


def _file_mode() -> int:
    """The mode open() gives a new file here: 0666 less the process's umask (read without changing it for good)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """`write` into a temporary file beside `path`, flushed to disk, then renamed over `path` (atomic on POSIX): a
    kill at any moment leaves the old file or the new one, never part of one. The folder is synced too, so that the
    rename outlives a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would hide records and checkpoints from a shared cluster's group
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


RECORDS = "records"  # an experiment folder keeps its runs' records here, as <name>-seed<seed>.json
RECORD_NAME = re.compile(r"result\.json|[\w+@-]+-seed\d+\.json")  # a run's own record, or a collected one
REQUIRED = ("seed", "deltas", "regime", "scale", "data", "input_size", "top1", "top5", "params", "gflops",
            "gflops_224", "train_images_per_second", "peak_memory_mb", "device")


class RecordWarning(UserWarning):
    """A record that aggregation skips or overrides: named, never fatal, so one bad run spoils no table."""


def _read_record(path: Path) -> dict:
    """Parse one record, completed or failed; a ValueError says why it cannot be used at all."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"unreadable JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("status") == "failed" and "deltas" in record and "seed" in record:
        _name(record)
        return record
    if record.get("status") != "completed":
        error = str(record.get("error", "")).partition("\n")[0]
        raise ValueError(f"status {record.get('status')!r}" + (f": {error}" if error else ""))
    missing = [key for key in REQUIRED if record.get(key) is None]
    if missing:
        raise ValueError(f"partial record, missing {', '.join(missing)}")
    if "step" not in record:
        raise ValueError("partial record, missing step")
    if record["step"] is None and record.get("model_name") is None:
        raise ValueError("no step and no model_name: neither a roadmap step nor a named model")
    if record["step"] is not None and record["step"] not in STEPS:
        raise ValueError(f"unknown step {record['step']!r}")
    _name(record)
    return record


def _name(record: dict) -> None:
    """Records written before runs had names, or before the step mark (`separate_downsampling-kernel_7`), are named
    from their deltas as today's runs are (`separate_downsampling@-kernel_7`)."""
    name = record.get("name")
    if name is None or (STEP_MARK not in name and re.search(r"[^-+][-+]", name)):
        record["name"] = run_name(record["deltas"], record.get("model_name"))


def _sort_key(item: tuple[tuple[str, int], Any]) -> tuple[int, str, int]:
    (name, seed), _ = item
    return roadmap_order(name), name, seed


def _records(runs_dir: Path, roadmap_only: bool) -> dict[tuple[str, int], tuple[Path, dict]]:
    """Every usable record under `runs_dir` by (name, seed), roadmap steps first: the newest file wins a
    duplicate, and a completed record wins over a failed one. `roadmap_only` keeps the roadmap's steps."""
    found: dict[tuple[str, int], tuple[Path, dict]] = {}
    for path in sorted(p for p in runs_dir.rglob("*.json") if RECORD_NAME.fullmatch(p.name)):
        try:
            record = _read_record(path)
            if roadmap_only and record["name"] not in STEPS:
                # e.g. `+step=gelu +delta=[layer_norm]` or `model=convnext_s`: it would corrupt a step's statistics
                kind = "a named model" if record.get("model_name") else "an ablation"
                raise ValueError(f"{record['name']} is {kind}, not a roadmap step")
            if roadmap_only and record["status"] == "failed":
                raise ValueError(f"status 'failed': {record['error']}")
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping {path}: {error}", RecordWarning, stacklevel=3)
            continue
        key = (record["name"], record["seed"])
        if key in found:
            rank = {"failed": 0, "completed": 1}
            kept, dropped = sorted([found[key], (path, record)], reverse=True,
                                   key=lambda pr: (rank[pr[1]["status"]], pr[0].stat().st_mtime))
            warnings.warn(f"two records for {key[0]} seed {key[1]}: keeping {kept[0]}, skipping {dropped[0]}",
                          RecordWarning, stacklevel=3)
            found[key] = kept
        else:
            found[key] = (path, record)
    return dict(sorted(found.items(), key=_sort_key))


def load_records(runs_dir: Path, roadmap_only: bool = True, completed_only: bool = True) -> list[dict]:
    """The completed records under `runs_dir` (run folders or an experiment's records/), roadmap steps first;
    with `completed_only=False` (and not `roadmap_only`) the failed ones too."""
    records = [r for _, r in _records(runs_dir, roadmap_only).values()]
    return [r for r in records if r["status"] == "completed" or not completed_only]


def collect(runs_dir: Path, records_dir: Path, roadmap_only: bool = True) -> list[Path]:
    """Copy each usable record to `records_dir/<name>-seed<seed>.json`: an experiment keeps its records, not
    its checkpoints. Outside the roadmap, failed records are kept too, to be listed with their error."""
    written = []
    for (name, seed), (path, _) in _records(runs_dir, roadmap_only).items():
        target = records_dir / f"{name}-seed{seed}.json"
        atomic_write_text(target, path.read_text())
        written.append(target)
    return written
