"""The main job: `python run.py +step=<name> seed=0,1,2 -m` trains a roadmap step once per seed.

Hydra composes conf/train.yaml with the overrides; each job trains and writes result.json in its own output folder.
Every value is checked right after composition, before any data is read; a multirun checks every job of its sweep
before the first one trains (roadmap/training/validation.py). A bad value or data set ends the run with a message
naming it and the fix, without a traceback. In a multirun a job failing later writes a failed record and the others
go on; the multirun still exits non-zero at the end. A multirun writes to
multirun/<study>/<setting>/<name>-seed<seed>/ (conf/train.yaml): run again, a job whose completed record is there is
skipped and an interrupted one continues from its newest sound checkpoint, so a study can run in pieces and survive
a kill at any moment. A job holds its folder's lock while it runs (roadmap/training/lock.py): a second copy of the
study skips the jobs the first is running and takes the others, so that two copies finish a study between them
(docs/crash-safety.md). `+step=<name> 'revert=[a,b]'` runs the step without those deltas: it becomes
`+delta=[<the step's other deltas>]` before Hydra composes (roadmap/config/ablation.py's expand_reverts).
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from roadmap.config.ablation import expand_reverts
from roadmap.errors import ConfigError
from roadmap.results.failures import Refusal, write_failure
from roadmap.training.job import OtherConfigRecord, skip_or_continue, train
from roadmap.training.lock import FolderHeld, hold

log = logging.getLogger("run")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Refusal | None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        with hold(out_dir):
            return run_job(cfg, out_dir, multirun)
    except FolderHeld as held:
        if multirun:  # the holder finishes this job: no failure, and on to the next
            log.warning("job %s: %s", hydra_cfg.job.num, held)
            return None
        raise SystemExit(f"Error: {held}") from None


def run_job(cfg: DictConfig, out_dir: Path, multirun: bool) -> Refusal | None:
    """Skip, continue or train the job in `out_dir`, which this process holds; in a multirun, a failure is written
    as the job's record, or, where the folder holds another config's record, returned (roadmap.results.failures)."""
    try:
        if not skip_or_continue(cfg, out_dir):
            train(cfg, out_dir)
    except Exception as error:
        if multirun and isinstance(error, OtherConfigRecord):  # that record is left as it is
            log.error("job %s refused: %s", HydraConfig.get().job.num, error)
            return Refusal(error)
        if multirun:
            log.error("job %s failed: %s", HydraConfig.get().job.num, error)
            write_failure(out_dir, cfg, error)
        elif isinstance(error, ConfigError):  # the message names the key or file and the fix; a traceback would bury it
            raise SystemExit(f"Error: {error}") from None
        else:
            raise
    return None


if __name__ == "__main__":
    try:  # a step's defaults list cannot remove a delta: a revert is rewritten into the list of deltas it leaves
        sys.argv[1:] = expand_reverts(sys.argv[1:])
    except ConfigError as error:
        raise SystemExit(f"Error: {error}") from None
    main()
