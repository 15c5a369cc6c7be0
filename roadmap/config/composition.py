"""Compose the project's Hydra configs from Python (tests, tables, scripts) as run.py does."""

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from roadmap.config.ablation import expand_reverts, register_resolvers
from roadmap.config.factorial import register_resolver as register_factorial
from roadmap.config.labels import register_resolver as register_setting
from roadmap.config.schema import register as register_schema

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PRIMARY = "train"
# The paper's setting: full widths and ImageNet-1K's classes (used for the complexity tables).
PAPER_SETTING = ("scale=paper", "data=imagenet", "data.num_classes=1000")
register_resolvers()  # ${run_name:...} and ${leave_one_out:}, used by the configs
register_factorial()  # ${factorial:...}, conf/ablation/factorial.yaml's sweep
register_setting()  # ${setting:}, conf/train.yaml's multirun folder
# A GPU's process needs a core for its training loop and one for pinning batches, besides its loader workers
# (docs/paper-scale.md): conf/trainer/slurm.yaml's cpus_per_task, from data.num_workers.
TRAINING_PROCESS_CORES = 2
if not OmegaConf.has_resolver("cores_per_gpu"):
    OmegaConf.register_new_resolver("cores_per_gpu", lambda workers: int(workers) + TRAINING_PROCESS_CORES)
register_schema()  # conf/train.yaml and conf/data/ name it first in their defaults lists


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python run.py <overrides>` would run with (`revert=` included)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose(PRIMARY, overrides=expand_reverts(overrides))


def step_overrides(step: str, regime: str = "resnet50") -> list[str]:
    """Overrides that select a roadmap step (the baseline is the config with no step)."""
    overrides = [f"regime={regime}"]
    return overrides if step == "baseline" else [*overrides, f"+step={step}"]


def scaled_widths(cfg: DictConfig) -> list[int]:
    """The model's stage widths times the scale's width multiplier (the proxy narrows every stage alike).
    Invalid widths pass through unchanged, for the network to name them."""
    multiplier = cfg.scale.width_multiplier
    if not (isinstance(multiplier, (int, float)) and multiplier > 0):
        raise ValueError(f"scale.width_multiplier={multiplier!r} is invalid: it must be a positive number.")
    if multiplier == 1:
        return list(cfg.model.widths)
    return [max(1, round(w * multiplier)) if isinstance(w, int) and w > 0 else w for w in cfg.model.widths]


def build_model(cfg: DictConfig) -> nn.Module:
    """Instantiate `cfg.model` at the config's scale; an invalid argument raises the network's own
    ValueError, which names it."""
    try:
        return instantiate(cfg.model, widths=scaled_widths(cfg))
    except InstantiationException as error:
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__ from None
        raise
