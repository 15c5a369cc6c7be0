"""The training recipe as objects: optimizer, lr schedule, Mixup/CutMix, loss and EMA decay, all for timm's.

The values come from ``conf/recipe/`` (torchvision's original ResNet recipe or the paper's Table 5);
this file only turns them into timm objects and checks them before any data is read.
"""

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from timm.data import Mixup
from timm.data.auto_augment import rand_augment_transform
from timm.data.transforms import str_to_pil_interp
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn, optim

from roadmap.errors import ConfigError, need

OPTIMIZERS = {"sgd": "momentum", "adamw": "adamw"}  # our name -> timm's ("momentum" is SGD without Nesterov)
SCHEDULES = ("step", "cosine", "linear")
EMA_USES = ("never", "always", "no_batchnorm")


def check_recipe(recipe: Mapping[str, Any]) -> None:
    """Fail on an invalid recipe value, naming its config key, before any data is read."""

    def check(key: str, ok: bool, must: str, value: object, fix: str = "") -> None:
        need(ok, f"recipe.{key}", value, must, fix)

    opt, sched, aug = recipe["optimizer"], recipe["schedule"], recipe["augment"]
    check("optimizer.name", opt["name"] in OPTIMIZERS, f"one of {list(OPTIMIZERS)}", opt["name"])
    check("schedule.name", sched["name"] in SCHEDULES, f"one of {list(SCHEDULES)}", sched["name"])
    check("ema.use", recipe["ema"]["use"] in EMA_USES, f"one of {list(EMA_USES)}", recipe["ema"]["use"])
    check("epochs", recipe["epochs"] > 0, "positive", recipe["epochs"])
    check("lr.base", recipe["lr"]["base"] > 0, "positive", recipe["lr"]["base"])
    check("lr.base_batch_size", recipe["lr"]["base_batch_size"] > 0, "positive", recipe["lr"]["base_batch_size"])
    gradual = recipe["lr"].get("gradual_warmup_epochs") or 0
    check("lr.gradual_warmup_epochs", 0 <= gradual < recipe["epochs"], "in [0, epochs)", gradual)
    check("optimizer.weight_decay", opt["weight_decay"] >= 0, ">= 0", opt["weight_decay"])
    if opt["name"] == "sgd":
        check("optimizer.momentum", opt["momentum"] is not None and 0 <= opt["momentum"] < 1, "in [0, 1) for SGD",
              opt["momentum"])
    else:
        betas = opt["betas"]
        check("optimizer.betas", betas is not None and len(betas) == 2 and all(0 <= b < 1 for b in betas),
              "two numbers in [0, 1) for AdamW, e.g. [0.9, 0.999]", betas)
    check("schedule.warmup_epochs", 0 <= sched["warmup_epochs"] < recipe["epochs"], "in [0, epochs)",
          sched["warmup_epochs"])
    check("schedule.min_lr", sched["min_lr"] >= 0, ">= 0", sched["min_lr"])
    if sched["name"] == "step":
        check("schedule.step_epochs", sched["step_epochs"] > 0, "positive", sched["step_epochs"])
        check("schedule.gamma", 0 < sched["gamma"] <= 1, "in (0, 1]", sched["gamma"])
    check("augment.train_crop", aug["train_crop"] == "random_resized", "random_resized (the only crop implemented)",
          aug["train_crop"])
    for key, top in (("train_crop_scale", 1), ("train_crop_ratio", math.inf)):
        crop = list(aug[key])
        check(f"augment.{key}", len(crop) == 2 and 0 < crop[0] <= crop[1] <= top,
              f"a range [low, high] with 0 < low <= high{' <= 1' if top == 1 else ''}", crop)
    check("augment.eval_resize_ratio", 0 < aug["eval_resize_ratio"] <= 1, "in (0, 1]", aug["eval_resize_ratio"])
    check("augment.interpolation", _is_interpolation(aug["interpolation"]), "an interpolation timm knows, e.g. "
          "bilinear or bicubic", aug["interpolation"])
    for key in ("mixup", "cutmix"):
        check(f"augment.{key}", aug[key] >= 0, ">= 0 (0 turns it off)", aug[key])
    for key in ("random_erasing", "label_smoothing", "mixup_switch_prob", "mixup_prob", "hflip"):
        check(f"augment.{key}", 0 <= aug[key] <= 1, "a probability in [0, 1]", aug[key])
    if aug["randaugment"] is not None:
        check_randaugment(aug["randaugment"])
    check("stochastic_depth", 0 <= recipe["stochastic_depth"] < 1, "in [0, 1)", recipe["stochastic_depth"])
    check("layer_scale", recipe["layer_scale"] is None or recipe["layer_scale"] > 0, "positive, or null for none",
          recipe["layer_scale"])
    check("ema.decay", 0 <= recipe["ema"]["decay"] < 1, "in [0, 1)", recipe["ema"]["decay"])
    check("grad_clip", recipe["grad_clip"] is None or recipe["grad_clip"] > 0, "positive, or null for none",
          recipe["grad_clip"])


def _is_interpolation(name: str) -> bool:
    try:
        str_to_pil_interp(name)
    except KeyError:
        return False
    return True


def check_randaugment(config: str) -> None:
    """Fail unless timm parses `config` as a RandAugment string (``rand-m9-mstd0.5-inc1``), and uses each of its
    sections: timm skips a section without a number (``rand-m9-mstdx``) silently."""
    must = ("a RandAugment string timm parses, e.g. rand-m9-mstd0.5-inc1 (rand, then m<magnitude>, n<ops>, mstd<std>, "
            "p<chance>, inc<0|1>, joined by -)")
    try:
        rand_augment_transform(config, {})
        ignored = [section for section in config.split("-")[1:] if not re.search(r"\d", section)]
        problem = f"timm would ignore {', '.join(ignored)}." if ignored else ""
    except (AssertionError, ValueError, KeyError) as error:  # timm asserts on an unknown section
        problem = f"timm says: {str(error) or 'not a RandAugment string'}."
    need(not problem, "recipe.augment.randaugment", config, must, problem)


def check_mixup_batch(augment: Mapping[str, Any], batch_size: int) -> None:
    """Mixup and CutMix mix each batch with its flipped self, so they need an even batch."""
    if mixup_active(augment) and batch_size % 2:
        raise ConfigError(
            f"Mixup/CutMix (recipe.augment.mixup={augment['mixup']}, cutmix={augment['cutmix']}) mix each batch "
            f"with its flipped self and need an even batch size, but data.batch_size={batch_size}. Use an even "
            "batch size, or turn them off with recipe.augment.mixup=0 recipe.augment.cutmix=0.")


LR_SCALING = {"linear": lambda ratio: ratio, "sqrt": math.sqrt, "none": lambda ratio: 1.0}


def lr_rule(rule: str | Mapping[str, str], optimizer: str) -> Callable[[float], float]:
    """The lr factor, as a function of the batch ratio, that `rule` (``scale.lr_scaling``: a rule, or one per
    optimizer) gives `optimizer`."""
    if isinstance(rule, Mapping):
        if optimizer not in rule:
            raise ConfigError(f"scale.lr_scaling={dict(rule)} names no rule for the recipe's optimizer {optimizer!r}; "
                              f"add one, e.g. scale.lr_scaling.{optimizer}=linear.")
        rule = rule[optimizer]
    need(isinstance(rule, str) and rule in LR_SCALING, "scale.lr_scaling", rule,
         f"one of {list(LR_SCALING)}, or one of them per optimizer")
    return LR_SCALING[rule]


def scaled_lr(recipe: Mapping[str, Any], global_batch_size: int, rule: str | Mapping[str, str] = "linear") -> float:
    """The recipe's base lr, given for its base batch size, moved to ours: in proportion (``linear``, the
    paper's rule), with the square root of the ratio (``sqrt``), or not at all (``none``: the base lr at any
    batch). `rule` is one of them, or one per optimizer (``{sgd: sqrt, adamw: none}``)."""
    factor = lr_rule(rule, recipe["optimizer"]["name"])
    return recipe["lr"]["base"] * factor(global_batch_size / recipe["lr"]["base_batch_size"])


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
    """The recipe's schedule over its `epochs` (roadmap/training/budget.py has already fitted them, with the warm-up and
    the step schedule's drops, to the run). Returns the scheduler and its interval, ``"step"`` (updated every
    optimizer step) or ``"epoch"``."""
    sched = recipe["schedule"]
    gradual = gradual_warmup_epochs(recipe, optimizer.param_groups[0]["lr"])
    per_step = sched["per_step"] or gradual > 0  # a gradual warm-up rises every optimizer step
    unit = steps_per_epoch if per_step else 1  # scheduler time unit: optimizer steps or epochs
    total = max(1, round(recipe["epochs"] * unit))
    warmup = round((gradual or sched["warmup_epochs"]) * unit)
    start = recipe["lr"]["base"] if gradual else 0.0
    after_warmup = {"t_initial": max(1, total - warmup), "lr_min": sched["min_lr"], "warmup_t": warmup,
                    "warmup_lr_init": start, "warmup_prefix": True, "t_in_epochs": not per_step}
    if sched["name"] == "cosine":
        scheduler: Scheduler = CosineLRScheduler(optimizer, **after_warmup)
    elif sched["name"] == "linear":
        scheduler = PolyLRScheduler(optimizer, power=1.0, **after_warmup)
    else:
        # Not rounded: 30 of 90 epochs stretched over 4 is a drop every 1.33 epochs (after epochs 1 and 2). The drops
        # count from the run's start, warm-up included (torchvision's epochs 30 and 60, as Goyal et al. keep them).
        decay_t = sched["step_epochs"] * unit
        scheduler = StepLRScheduler(optimizer, decay_t=decay_t, decay_rate=sched["gamma"], warmup_t=warmup,
                                    warmup_lr_init=start, warmup_prefix=False, t_in_epochs=not per_step)
    return scheduler, "step" if per_step else "epoch"


def gradual_warmup_epochs(recipe: Mapping[str, Any], lr: float) -> float:
    """The epochs of Goyal et al.'s gradual warm-up ("Accurate, large minibatch SGD", 2017) the run gets: the lr
    rises by the same amount every optimizer step from the recipe's base lr to `lr`, the base lr scaled up to a
    larger batch. None (0) at or below the base batch, where the schedule is the recipe's own, nor in a recipe
    that warms up by itself (``schedule.warmup_epochs``)."""
    epochs = recipe["lr"].get("gradual_warmup_epochs") or 0.0
    if recipe["schedule"]["warmup_epochs"] > 0 or lr <= recipe["lr"]["base"]:
        return 0.0
    return epochs


def mixup_active(augment: Mapping[str, Any]) -> bool:
    return augment["mixup"] > 0 or augment["cutmix"] > 0


def build_mixup(augment: Mapping[str, Any], num_classes: int, batch_size: int) -> Mixup | None:
    """timm's Mixup/CutMix on whole batches, or None when the recipe uses neither."""
    if not mixup_active(augment):
        return None
    check_mixup_batch(augment, batch_size)
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
    """The decay of the weights' exponential moving average (roadmap/training/ema.py), or None where the recipe's rule
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
        raise ConfigError(
            f"scale.global_batch_size={global_batch_size} is not a whole multiple of data.batch_size x devices x "
            f"nodes = {batch_size} x {devices} x {num_nodes} = {per_step}. Choose a global batch that is.")
    return round(steps)
