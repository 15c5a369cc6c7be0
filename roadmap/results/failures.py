"""The record of a job that failed, and the Hydra callback that names a multirun's failed jobs."""

import json
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
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


class Refusal(str):
    """What a multirun's job returns when its folder holds another config's completed record: the error, which
    cannot be its record (that would overwrite the other one)."""

    def __new__(cls, error: BaseException) -> "Refusal":
        return super().__new__(cls, str(error))


class FailedJobs(Callback):
    """Hydra callback: after a multirun, name the jobs that failed and those refused their folder, and exit non-zero.

    Failures are read from the records on disk; refusals from the jobs' return values, which reach this callback
    where the jobs run in this process (Hydra's basic launcher; a submitit job logs its refusal in its own log)."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return.return_value, Refusal):
            self.refused.append(job_return.return_value)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        records = Path(config.hydra.sweep.dir).rglob("result.json")
        failed = [str(p) for p in records if json.loads(p.read_text())["status"] == "failed"]
        problems = [f"{len(failed)} job(s) failed; their errors are in: {', '.join(failed)}"] if failed else []
        problems += [f"a job was refused its folder: {refusal}" for refusal in self.refused]
        if problems:
            raise SystemExit("\n".join(problems))
