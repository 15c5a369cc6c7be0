"""The record of a job that failed, and the Hydra callback that names a multirun's failed jobs."""

import json
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from roadmap.results.records import atomic_write_text


def write_failure(out_dir: Path, cfg: DictConfig, error: BaseException) -> None:
    """The record of a job that failed, so that a multirun's other jobs go on and the error stays on disk."""
    record = {"status": "failed", "name": cfg.name, "step": cfg.step, "deltas": list(cfg.deltas), "seed": cfg.seed,
              "study": cfg.get("study"),
              "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(error))}
    atomic_write_text(out_dir / "result.json", json.dumps(record, indent=2) + "\n")


class FailedJobs(Callback):
    """Hydra callback: after a multirun, name the jobs that failed and exit non-zero."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        records = Path(config.hydra.sweep.dir).rglob("result.json")
        failed = [str(p) for p in records if json.loads(p.read_text())["status"] == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} job(s) failed; their errors are in: {', '.join(failed)}")
