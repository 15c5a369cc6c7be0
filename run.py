"""The main job: `python run.py +step=<name> seed=0,1,2 -m` trains a roadmap step once per seed.

Hydra composes conf/train.yaml with the overrides; each job trains and writes result.json in its own
output folder. Every value is checked right after composition, before any data is read; a multirun checks every
job of its sweep before the first one trains (roadmap/validation.py). A bad value or data set ends the run with a
message naming it and the fix, without a traceback. In a multirun a job failing later writes a failed record and
the others go on; the multirun still exits non-zero at the end. Run again into the same folders (a fixed
`hydra.sweep.dir`, as the Makefile's studies use), a job whose completed record is there is skipped and an
interrupted one continues from its last checkpoint, so a study can run in pieces.
"""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from roadmap.errors import ConfigError
from roadmap.results.failures import write_failure
from roadmap.train import skip_or_continue, train

log = logging.getLogger("run")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        if not skip_or_continue(cfg, out_dir):
            train(cfg, out_dir)
    except Exception as error:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("job %s failed: %s", hydra_cfg.job.num, error)
            write_failure(out_dir, cfg, error)
        elif isinstance(error, ConfigError):  # the message names the key or file and the fix; a traceback would bury it
            raise SystemExit(f"Error: {error}") from None
        else:
            raise


if __name__ == "__main__":
    main()
