"""What a run is among the others: its study, its place in the roadmap and the paper's number for it.

Records (result.json), wandb runs and the dashboard (roadmap/tools/dashboard.py) read the same labels, so that a table,
a figure and a wandb panel select and order runs alike. The study key keeps apart runs that must never be
averaged together: a proxy `gelu` and a paper-scale `gelu`, a roadmap step and the same network in a
leave-one-out study, ConvNeXt-S and the baseline.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from roadmap.errors import need
from roadmap.steps import ORDER, STEPS

# roadmap: `make roadmap`; leave_one_out: `+ablation=leave_one_out`; factorial: `+ablation=factorial`;
# calibration: `make calibration`; attention: `make attention`; ladder: `+ablation=ladder`; free: any other run
# (conf/train.yaml's `study`).
STUDIES = ("roadmap", "leave_one_out", "factorial", "calibration", "attention", "ladder", "free")


def check_study(study: Any) -> None:
    need(study in STUDIES, "study", study, f"one of {', '.join(STUDIES)}")


def data_name(cfg: DictConfig) -> str:
    """The data set's name: CIFAR's own (cifar10, cifar100), otherwise its data module without `Data`."""
    return cfg.data.get("name") or cfg.data._target_.rsplit(".", 1)[-1].removesuffix("Data").lower()


def setting(cfg: DictConfig) -> str:
    """The study's setting as a folder name: the data set, the scale and the regime, what the study key holds besides
    the study. A multirun writes to multirun/<study>/<setting>/ (conf/train.yaml), so the same command run again
    finds its own jobs, and one study at another setting writes beside them."""
    return "-".join((data_name(cfg), cfg.scale.name, cfg.regime.name)).replace("/", "_")


def register_resolver() -> None:
    """``${setting:}`` for conf/train.yaml's multirun folder."""
    if not OmegaConf.has_resolver("setting"):
        OmegaConf.register_new_resolver("setting", lambda *, _root_: setting(_root_))


def study_key(cfg: DictConfig) -> str:
    """Which runs may be compared with this one: the same study, data set, scale and regime."""
    return f"{cfg.study}:{data_name(cfg)}:{cfg.scale.name}:{cfg.regime.name}"


def wandb_group(cfg: DictConfig) -> str:
    """The run's wandb group: its seeds, and no run of another study, scale, data set or regime."""
    return f"{study_key(cfg)}:{cfg.name}"


def labels(cfg: DictConfig) -> dict[str, Any]:
    """The labels a record and a wandb run carry. A run is a roadmap step only when its network is one (its name
    is the step's: a step with a delta left out or added is not); it then has the step's index, its stage (the
    paper's grouping in Figure 2) and the paper's top-1 for it in the run's regime."""
    step = STEPS.get(cfg.name)
    return {
        "study": cfg.study,
        "study_key": study_key(cfg),
        "wandb_group": wandb_group(cfg),
        "model_name": cfg.model_name,
        "roadmap_index": ORDER[step.name] if step else None,
        "stage": step.group if step else None,
        "paper_top1": step.paper[cfg.regime.name].top1 if step else None,
    }
