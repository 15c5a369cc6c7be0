"""A study's summary run: the figures and the table an experiment folder holds, logged to wandb beside the study's
runs, so that the dashboard (roadmap/tools/dashboard.py) shows the very files `scripts/figure.py` draws and commits.

`scripts/figure.py --wandb STUDY` logs it right after drawing, from the same files: the figure in wandb cannot
drift from the committed one. `make roadmap` and `make leave-one-out` ask for it after their figures, into their
sweep folder, so that `make wandb-sync` uploads a study's runs and its summary together; `make figure` does not,
as it trains nothing and so has no new runs to summarise.
"""

import logging
from pathlib import Path

import wandb
from omegaconf import OmegaConf

from roadmap.config.composition import compose
from roadmap.config.labels import study_key

log = logging.getLogger(__name__)

JOB_TYPE = "summary"  # a training run's job type is its study: the dashboard tells them apart by it
TABLE_KEY = "table"  # the experiment's table.csv rows, as a wandb.Table


def figure_key(name: str) -> str:
    """The wandb key of the figure `scripts/figure.py` draws as `<name>.png`."""
    return f"figure/{name}"


def summary_group(key: str) -> str:
    """The summary run's group: its study key, then `summary`, where a study's runs have their names."""
    return f"{key}:{JOB_TYPE}"


def records_study_key(records: list[dict], study: str) -> str:
    """The study key all `records` share: each record's own label, or, for a record written before records had
    one, the key of its config in `study` (the experiment's study, which the Makefile knows)."""
    keys = {record.get("study_key") or study_key(OmegaConf.create({**record["config"], "study": study}))
            for record in records}
    if len(keys) != 1:
        raise SystemExit(f"the records mix study keys ({', '.join(sorted(keys)) or 'none'}): one summary run "
                         "summarises one study")
    return keys.pop()


def log_summary_run(records: list[dict], study: str, rows: list[dict], figures: dict[str, Path],
                    out_dir: Path) -> Path | None:
    """Log `figures` (name -> PNG) as images and `rows` as a table to a new run of the records' study, with the
    wandb settings of conf/logger/default.yaml (offline by default: `make wandb-sync` uploads it from `out_dir`).
    Returns the run's folder, or None when wandb is disabled there."""
    settings = compose().logger.wandb
    if not settings.enabled:
        log.info("wandb is disabled (logger.wandb.enabled=false): no summary run")
        return None
    key = records_study_key(records, study)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=settings.project, entity=settings.entity, mode=settings.mode, dir=out_dir,
                     group=summary_group(key), job_type=JOB_TYPE, name=summary_group(key),
                     config={"study": study, "study_key": key}, reinit="finish_previous")
    columns = list(rows[0])
    run.log({**{figure_key(name): wandb.Image(str(path)) for name, path in figures.items()},
             TABLE_KEY: wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})
    folder = Path(run.dir).parent
    run.finish()
    return folder
