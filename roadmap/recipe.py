"""The training recipe as objects: optimizer, lr schedule, Mixup/CutMix, loss and EMA decay, all for timm's.

The values come from ``conf/recipe/`` (torchvision's original ResNet recipe or the paper's Table 5);
this file only turns them into timm objects and checks them before any data is read.
"""

import math
from collections.abc import Mapping
from typing import Any

from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn, optim

OPTIMIZERS = {"sgd": "momentum", "adamw": "adamw"}  # our name -> timm's ("momentum" is SGD without Nesterov)
SCHEDULES = ("step", "cosine", "linear")
EMA_USES = ("never", "always", "no_batchnorm")


def check_recipe(recipe: Mapping[str, Any]) -> None:
    """Fail on an invalid recipe value, naming its config key, before any data is read."""

    def need(ok: bool, key: str, must: str, value: object) -> None:
        if not ok:
            raise ValueError(f"recipe.{key}={value!r} is invalid: it must be {must}.")

    opt, sched, aug = recipe["optimizer"], recipe["schedule"], recipe["augment"]
    need(opt["name"] in OPTIMIZERS, "optimizer.name", f"one of {list(OPTIMIZERS)}", opt["name"])
    need(sched["name"] in SCHEDULES, "schedule.name", f"one of {list(SCHEDULES)}", sched["name"])
    need(recipe["ema"]["use"] in EMA_USES, "ema.use", f"one of {list(EMA_USES)}", recipe["ema"]["use"])
    need(recipe["epochs"] > 0, "epochs", "positive", recipe["epochs"])
    need(recipe["lr"]["base"] > 0, "lr.base", "positive", recipe["lr"]["base"])
    need(recipe["lr"]["base_batch_size"] > 0, "lr.base_batch_size", "positive", recipe["lr"]["base_batch_size"])
    need(opt["weight_decay"] >= 0, "optimizer.weight_decay", ">= 0", opt["weight_decay"])
    need(0 <= sched["warmup_epochs"] < recipe["epochs"], "schedule.warmup_epochs", "in [0, epochs)",
         sched["warmup_epochs"])
    need(sched["min_lr"] >= 0, "schedule.min_lr", ">= 0", sched["min_lr"])
    for key in ("mixup", "cutmix"):
        need(aug[key] >= 0, f"augment.{key}", ">= 0 (0 turns it off)", aug[key])
    for key in ("random_erasing", "label_smoothing", "mixup_switch_prob", "mixup_prob", "hflip"):
        need(0 <= aug[key] <= 1, f"augment.{key}", "a probability in [0, 1]", aug[key])


LR_SCALING = {"linear": lambda ratio: ratio, "sqrt": math.sqrt, "none": lambda ratio: 1.0}


def scaled_lr(recipe: Mapping[str, Any], global_batch_size: int, rule: str | Mapping[str, str] = "linear") -> float:
    """The recipe's base lr, given for its base batch size, moved to ours: in proportion (``linear``, the
    paper's rule), with the square root of the ratio (``sqrt``), or not at all (``none``: the base lr at any
    batch). `rule` is one of them, or one per optimizer (``{sgd: sqrt, adamw: none}``)."""
    if isinstance(rule, Mapping):
        optimizer = recipe["optimizer"]["name"]
        if optimizer not in rule:
            raise ValueError(f"scale.lr_scaling={dict(rule)} names no rule for the recipe's optimizer {optimizer!r}; "
                             f"add one, e.g. scale.lr_scaling.{optimizer}=linear.")
        return scaled_lr(recipe, global_batch_size, rule[optimizer])
    if rule not in LR_SCALING:
        raise ValueError(f"scale.lr_scaling={rule!r} is invalid: it must be one of {list(LR_SCALING)}, or one of them "
                         "per optimizer.")
    return recipe["lr"]["base"] * LR_SCALING[rule](global_batch_size / recipe["lr"]["base_batch_size"])


def build_optimizer(model: nn.Module, recipe: Mapping[str, Any], lr: float) -> optim.Optimizer:
    """SGD or AdamW; with ``decay_norm_and_bias: false`` timm leaves every 1-D parameter (norms, biases,
    layer scale) out of weight decay, as the authors' code does. The multi-tensor (foreach) implementation: a
    few kernels per step instead of a dozen per parameter, which on a CPU costs a small network time."""
    opt = recipe["optimizer"]
    extra = {"betas": tuple(opt["betas"])} if opt["name"] == "adamw" else {"momentum": opt["momentum"]}
    return create_optimizer_v2(model, OPTIMIZERS[opt["name"]], lr=lr, weight_decay=opt["weight_decay"],
                               filter_bias_and_bn=not opt["decay_norm_and_bias"], foreach=True, **extra)


def build_scheduler(optimizer: optim.Optimizer, recipe: Mapping[str, Any],
                    steps_per_epoch: int) -> tuple[Scheduler, str]:
    """The recipe's schedule over its `epochs` (roadmap/budget.py has already fitted them, with the warm-up and
    the step schedule's drops, to the run). Returns the scheduler and its interval, ``"step"`` (updated every
    optimizer step) or ``"epoch"``."""
    sched = recipe["schedule"]
    per_step = sched["per_step"]
    unit = steps_per_epoch if per_step else 1  # scheduler time unit: optimizer steps or epochs
    total = max(1, round(recipe["epochs"] * unit))
    warmup = round(sched["warmup_epochs"] * unit)
    after_warmup = {"t_initial": max(1, total - warmup), "lr_min": sched["min_lr"], "warmup_t": warmup,
                    "warmup_lr_init": 0.0, "warmup_prefix": True, "t_in_epochs": not per_step}
    if sched["name"] == "cosine":
        scheduler: Scheduler = CosineLRScheduler(optimizer, **after_warmup)
    elif sched["name"] == "linear":
        scheduler = PolyLRScheduler(optimizer, power=1.0, **after_warmup)
    else:
        # Not rounded: 30 of 90 epochs stretched over 4 is a drop every 1.33 epochs (after epochs 1 and 2).
        decay_t = sched["step_epochs"] * unit
        scheduler = StepLRScheduler(optimizer, decay_t=decay_t, decay_rate=sched["gamma"], warmup_t=warmup,
                                    warmup_lr_init=0.0, t_in_epochs=not per_step)
    return scheduler, "step" if per_step else "epoch"


def mixup_active(augment: Mapping[str, Any]) -> bool:
    return augment["mixup"] > 0 or augment["cutmix"] > 0


def build_mixup(augment: Mapping[str, Any], num_classes: int, batch_size: int) -> Mixup | None:
    """timm's Mixup/CutMix on whole batches, or None when the recipe uses neither."""
    if not mixup_active(augment):
        return None
    if batch_size % 2:
        raise ValueError(
            f"Mixup/CutMix (recipe.augment.mixup={augment['mixup']}, cutmix={augment['cutmix']}) mix each batch "
            f"with its flipped self and need an even batch size, but data.batch_size={batch_size}. Use an even "
            "batch size, or turn them off with recipe.augment.mixup=0 recipe.augment.cutmix=0.")
    return Mixup(mixup_alpha=augment["mixup"], cutmix_alpha=augment["cutmix"], prob=augment["mixup_prob"],
                 switch_prob=augment["mixup_switch_prob"], label_smoothing=augment["label_smoothing"],
                 num_classes=num_classes)


def build_loss(augment: Mapping[str, Any]) -> nn.Module:
    """Soft-target cross-entropy under Mixup (which folds label smoothing into its targets)."""
    if mixup_active(augment):
        return SoftTargetCrossEntropy()
    if augment["label_smoothing"] > 0:
        return LabelSmoothingCrossEntropy(smoothing=augment["label_smoothing"])
    return nn.CrossEntropyLoss()


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def ema_decay(model: nn.Module, recipe: Mapping[str, Any]) -> float | None:
    """The decay of the weights' exponential moving average (roadmap/ema.py), or None where the recipe's rule
    keeps none: ``no_batchnorm`` follows the paper, "EMA severely hurts models with BatchNorm layers"."""
    use = recipe["ema"]["use"]
    if use == "never" or (use == "no_batchnorm" and has_batchnorm(model)):
        return None
    return float(recipe["ema"]["decay"])


def accumulation(global_batch_size: int, batch_size: int, devices: int, num_nodes: int) -> int:
    """Gradient accumulation steps that reach the global batch from the per-device one."""
    per_step = batch_size * devices * num_nodes
    steps = global_batch_size / per_step
    if steps < 1 or not math.isclose(steps, round(steps)):
        raise ValueError(
            f"scale.global_batch_size={global_batch_size} is not a whole multiple of data.batch_size x devices x "
            f"nodes = {batch_size} x {devices} x {num_nodes} = {per_step}. Choose a global batch that is.")
    return round(steps)
