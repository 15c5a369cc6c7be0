"""The config's schema: what type each key of conf/ may hold, checked by OmegaConf as Hydra composes.

Hydra's structured configs, used as a schema for the YAML files (Hydra's "Structured Config schema" pattern):
the dataclasses below are stored in Hydra's ConfigStore under `schema/`, and each config that owns a part of the
tree names its schema first in its defaults list, so that the YAML values merge into typed nodes:

    conf/train.yaml          - /schema/train@_here_          `Train`: the run-level keys and the groups
    conf/data/<name>.yaml    - /schema/data/<source>@_here_  one per data module: `FashionMNIST`, `CIFAR`, ...

Every field is MISSING (``???``): the values and their comments stay in conf/*.yaml, and a value the YAML files
leave out is reported as missing rather than filled in silently. A value of the wrong type fails composition,
naming the key (``seed=abc``: "Value 'abc' of type 'str' could not be converted to Integer, full_key: seed").
conf/train.yaml lists the data group before its own keys: OmegaConf resolves an interpolation of a whole node
(`data.augment: ${recipe.augment}`) into a copy when a schema is merged onto it, and the copy would miss later
overrides of the recipe and the budget's fitted recipe.

Ranges and relations (a positive batch, a probability in [0, 1], an input from which every stage keeps a pixel)
are checked right after composition by roadmap/training/validation.py, which also refuses a key that a `+key=value`
added where the schema does not declare it.

The schema adds no key and changes no value: a config composes to the same values as without it, so the records
of earlier runs still match their configs. `roadmap.config.composition` registers it on import; `register()` does it for
code that composes conf/ through Hydra directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

# --- scale, recipe, trainer, logger -------------------------------------------------------------------------


@dataclass
class Scale:
    name: str = MISSING
    width_multiplier: float = MISSING
    input_size: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    global_batch_size: int | None = MISSING
    lr_scaling: Any = MISSING  # a rule name, or one per optimizer ({sgd: sqrt, adamw: none})
    train_subset: int | None = MISSING
    val_subset: int | None = MISSING
    val_every_n_epochs: int | None = MISSING
    eval_resize_ratio: float | None = MISSING
    budget: dict[str, Any] = MISSING  # rule -> true/false, or a variant (roadmap/training/budget.py)


@dataclass
class Optimizer:
    name: str = MISSING
    momentum: float | None = MISSING
    betas: list[float] | None = MISSING
    weight_decay: float = MISSING
    decay_norm_and_bias: bool = MISSING


@dataclass
class LearningRate:
    base: float = MISSING
    base_batch_size: int = MISSING
    gradual_warmup_epochs: float = 0.0


@dataclass
class Schedule:
    name: str = MISSING
    warmup_epochs: float = MISSING
    step_epochs: float = MISSING
    gamma: float = MISSING
    min_lr: float = MISSING
    per_step: bool = MISSING


@dataclass
class Augment:
    train_crop: str = MISSING
    train_crop_scale: list[float] = MISSING
    train_crop_ratio: list[float] = MISSING
    hflip: float = MISSING
    randaugment: str | None = MISSING
    mixup: float = MISSING
    cutmix: float = MISSING
    mixup_switch_prob: float = MISSING
    mixup_prob: float = MISSING
    random_erasing: float = MISSING
    label_smoothing: float = MISSING
    eval_resize_ratio: float = MISSING
    interpolation: str = MISSING


@dataclass
class EMA:
    decay: float = MISSING
    use: str = MISSING


@dataclass
class Recipe:
    name: str = MISSING
    epochs: int = MISSING
    optimizer: Optimizer = MISSING
    lr: LearningRate = MISSING
    schedule: Schedule = MISSING
    augment: Augment = MISSING
    stochastic_depth: float = MISSING
    layer_scale: float | None = MISSING
    ema: EMA = MISSING
    grad_clip: float | None = MISSING


@dataclass
class Trainer:
    """lightning.Trainer's arguments that conf/trainer/ sets, and our own two; any other Trainer argument may be
    added (``+trainer.limit_train_batches=10``), which roadmap/training/validation.py checks against Trainer's
    signature."""

    accelerator: str = MISSING
    devices: Any = MISSING  # a count, "auto", or a list of device ids
    num_nodes: int = MISSING
    strategy: str = MISSING
    precision: str = MISSING
    deterministic: bool = MISSING
    benchmark: bool = MISSING
    log_every_n_steps: int = MISSING
    channels_last: bool = MISSING
    compile: Any = MISSING  # false, true or a torch.compile mode (roadmap/training/module.py)


@dataclass
class Wandb:
    enabled: bool = MISSING
    mode: str = MISSING
    project: str = MISSING
    entity: str | None = MISSING


@dataclass
class Logger:
    wandb: Wandb = MISSING
    csv: bool = MISSING


# --- data: the keys every data set shares (conf/train.yaml), then each data set's own ---------------------------


@dataclass
class Data:
    _target_: str = MISSING
    num_classes: int | None = MISSING
    in_chans: int = MISSING
    input_size: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    pin_memory: bool | None = MISSING
    persistent_workers: bool = MISSING
    train_subset: int | None = MISSING
    val_subset: int | None = MISSING
    augment: Any = MISSING  # ${recipe.augment}, typed there
    seed: int = MISSING


@dataclass
class FashionMNIST(Data):
    root: str | None = MISSING
    download: bool = MISSING
    cache_dir: str = MISSING
    pipeline: str | None = MISSING  # loader | device | null (roadmap/data/module.py)


@dataclass
class CIFAR(Data):
    name: str = MISSING
    root: str = MISSING
    download: bool = MISSING
    pipeline: str | None = MISSING  # loader | device | null (roadmap/data/module.py)


@dataclass
class Folder(Data):
    root: str = MISSING


@dataclass
class Timm(Data):
    name: str = MISSING
    root: str | None = MISSING
    train_split: str = MISSING
    val_split: str = MISSING


@dataclass
class Synthetic(Data):
    train_size: int = MISSING
    val_size: int = MISSING


# --- the whole config -------------------------------------------------------------------------------------------


@dataclass
class Train:
    """conf/train.yaml: the run-level keys and the typed groups. The roadmap's own keys (`regime`, `model`,
    `step`, `deltas`, `name`, a study's `calibration`) stay free (stored with struct mode off, so that configs
    may add them): roadmap/config/ablation.py and the network check them."""

    scale: Scale = MISSING
    recipe: Recipe = MISSING
    data: Data = MISSING
    trainer: Trainer = MISSING
    logger: Logger = MISSING
    seed: int = MISSING
    resume: str | None = MISSING


DATA_SETS = {"fashion_mnist": FashionMNIST, "cifar": CIFAR, "folder": Folder, "timm": Timm,
             "synthetic": Synthetic}


def register() -> None:
    """Store the schema in Hydra's ConfigStore, where conf/'s defaults lists find it (idempotent)."""
    store = ConfigStore.instance()
    train = OmegaConf.structured(Train)
    OmegaConf.set_struct(train, False)  # the root also takes keys it does not declare; those it does keep their types
    store.store(group="schema", name="train", node=train)
    for name, node in DATA_SETS.items():
        store.store(group="schema/data", name=name, node=node)
