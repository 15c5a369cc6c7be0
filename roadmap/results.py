"""Run records (result.json): written atomically, so an interrupted write never leaves half a file."""

import json
import os
import tempfile
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_failure(out_dir: Path, cfg: DictConfig, error: BaseException) -> None:
    """The record of a job that failed, so that a multirun's other jobs go on and the error stays on disk."""
    record = {"status": "failed", "step": cfg.step, "seed": cfg.seed, "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(error))}
    atomic_write_text(out_dir / "result.json", json.dumps(record, indent=2) + "\n")


class FailedJobs(Callback):
    """Hydra callback: after a multirun, name the jobs that failed and exit non-zero."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        records = Path(config.hydra.sweep.dir).rglob("result.json")
        failed = [str(p) for p in records if json.loads(p.read_text())["status"] == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} job(s) failed; their errors are in: {', '.join(failed)}")
