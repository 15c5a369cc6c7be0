"""A recipe made for hundreds of ImageNet epochs, fitted to a run of a few thousand optimizer steps.

Both recipes (conf/recipe/) were written for ImageNet-1K: torchvision's for 90 epochs at batch 256 (450,450
optimizer steps), the paper's Table 5 for 300 epochs at batch 4096 (93,900 steps). A run at the proxy scale
trains for a few thousand steps. Every recipe value tied to the length of training is fitted to the run here,
by one rule each, with its reason:

- always: the run's epochs replace the recipe's; warm-up and the step schedule's drops keep their fraction of
  training;
- the rules a scale turns on in `scale.budget` (conf/scale/*.yaml); `scale=paper` turns none on, since it trains
  for the recipe's own length. A rule is on (`true`) or off; the regularization rule may also name how it weakens
  the regularisers (`linear`, which `true` means, or `sqrt`).

`fit_recipe` returns the recipe the run uses and every value it changed, `{key: {"recipe": ..., "used": ...}}`,
which the run's record keeps.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from roadmap.errors import ConfigError

IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1K's training set, which both recipes were made for


@dataclass(frozen=True)
class Budget:
    """How long the run trains, against how long the recipe trains, in epochs and optimizer steps."""

    epochs: float
    steps_per_epoch: int  # the run's optimizer steps per epoch
    recipe_epochs: float
    recipe_steps_per_epoch: int  # ImageNet-1K at the recipe's reference batch size

    @classmethod
    def of(cls, recipe: Mapping[str, Any], epochs: float, steps_per_epoch: int) -> Budget:
        return cls(epochs, steps_per_epoch, recipe["epochs"],
                   math.ceil(IMAGENET_TRAIN_IMAGES / recipe["lr"]["base_batch_size"]))

    @property
    def steps(self) -> int:
        return round(self.epochs * self.steps_per_epoch)

    @property
    def recipe_steps(self) -> int:
        return round(self.recipe_epochs * self.recipe_steps_per_epoch)


Recipe = dict[str, Any]  # a plain, mutable copy of a recipe config


def stretch(recipe: Recipe, budget: Budget) -> None:
    """The run's epochs replace the recipe's; warm-up and the step schedule's drops keep their fraction of
    training (20 of 300 epochs of warm-up stay the first 6.7 % of the run)."""
    ratio = budget.epochs / budget.recipe_epochs
    recipe["epochs"] = budget.epochs
    recipe["schedule"]["warmup_epochs"] *= ratio
    recipe["lr"]["gradual_warmup_epochs"] = recipe["lr"].get("gradual_warmup_epochs", 0.0) * ratio
    if recipe["schedule"]["name"] == "step":
        recipe["schedule"]["step_epochs"] *= ratio


PAPER_WARMUP = 20 / 300  # the paper's warm-up: 20 of its recipe's 300 epochs (Table 5)


def warmup(recipe: Recipe, budget: Budget) -> None:
    """A recipe without warm-up warms up linearly from 0 over the same fraction of the run as the paper's recipe.

    torchvision's ResNet recipe starts SGD at its full lr. Over 450,450 steps the loss spikes of the first few
    hundred cost nothing; over a run of one or two thousand they are a good part of it, and how large they are
    depends on the seed (measured: experiments/proxy_calibration/). Warm-up is the usual cure for an SGD start
    at a high lr (Goyal et al., "Accurate, large minibatch SGD", 2017). A recipe with its own warm-up keeps it.
    """
    if recipe["schedule"]["warmup_epochs"] > 0 or budget.steps >= budget.recipe_steps:
        return
    recipe["schedule"]["warmup_epochs"] = budget.epochs * PAPER_WARMUP


def linear_to_zero(recipe: Recipe, budget: Budget) -> None:
    """After warm-up the lr falls linearly to zero at the run's last step, updated every step.

    Under a fixed budget of steps, a schedule that reaches zero at the budget's end, linearly, beats a long
    schedule stretched or cut short (Li, Yumer & Ramanan, "Budgeted training", ICLR 2020). A stretched step
    schedule ends at 1 % of its lr with a third of the run left; a cosine one spends its last steps near zero.
    """
    if budget.steps >= budget.recipe_steps:
        return
    recipe["schedule"].update(name="linear", min_lr=0.0, per_step=True)


def ema_horizon(recipe: Recipe, budget: Budget) -> None:
    """The EMA averages over the same fraction of training as the recipe's.

    A decay d averages over about 1 / (1 - d) steps: 0.9999 is 10,000 steps, 11 % of the paper's 93,900. Over a
    run of 1,000 steps the same decay would still be mostly the initial weights at the end; the decay that keeps
    the horizon at 11 % of the run is 1 - (1 - d) x recipe steps / run steps.
    """
    if recipe["ema"]["use"] == "never" or budget.steps >= budget.recipe_steps:
        return
    recipe["ema"]["decay"] = 1 - (1 - recipe["ema"]["decay"]) * budget.recipe_steps / budget.steps


# How the regularization rule turns the run's share of the recipe's epochs into the regularisers' strength.
STRENGTHS: dict[str, Callable[[float], float]] = {"linear": lambda share: share, "sqrt": math.sqrt}


def regularization(recipe: Recipe, budget: Budget, strength: str = "linear") -> None:
    """Every regulariser at a strength in proportion to how often the run shows each image, against the recipe.

    Augmentation and regularisation trade slower learning for less overfitting, and their strengths were set for
    300 (or 90) passes over ImageNet. A run of a few passes cannot overfit, so at full strength they only slow it
    down (measured: experiments/proxy_calibration/); "ResNet strikes back" (Wightman et al. 2021) weakens them for
    shorter schedules too. Each keeps its place in the recipe, at strength s = run epochs / recipe epochs: how
    often a stochastic one acts is multiplied by s (the chance that a batch is mixed by Mixup or CutMix, that an
    image is erased, that each RandAugment operation applies), as are label smoothing and the stochastic-depth
    rate; when one acts, it acts as the recipe says (CutMix's boxes, for one, do not shrink with its alpha). The
    random-resized crop's range of areas shrinks by s towards the area of the evaluation's centre crop (0.875^2 of
    the image), and its range of aspect ratios towards 1: at none, crops show objects at the size and shape
    evaluation does (FixRes, Touvron et al. 2019), which a plain resize of the whole image would not.

    `strength` "sqrt" weakens them less: s = sqrt(run epochs / recipe epochs). At one pass the linear rule leaves the
    modern recipe with next to no augmentation (Mixup's chance 0.003, crops of 99.7-100 % of the image), which
    suits a run that cannot overfit; over several passes (a GPU rung's ten: s = 0.033 linear, 0.18 sqrt) the
    square root lets the recipe step test some of the recipe's augmentation. Which suits a rung is the
    calibration's to measure (conf/calibration/gpu_rung/).
    """
    if budget.epochs >= budget.recipe_epochs:
        return
    s = STRENGTHS[strength](budget.epochs / budget.recipe_epochs)
    aug = recipe["augment"]
    evaluated = aug["eval_resize_ratio"] ** 2
    smallest, largest = aug["train_crop_scale"]
    aug["train_crop_scale"] = [evaluated - s * (evaluated - smallest), evaluated + s * (largest - evaluated)]
    aug["train_crop_ratio"] = [ratio**s for ratio in aug["train_crop_ratio"]]
    if aug["randaugment"]:
        aug["randaugment"] = _rarer_randaugment(aug["randaugment"], s)
    for key in ("mixup_prob", "random_erasing", "label_smoothing"):
        aug[key] *= s
    recipe["stochastic_depth"] *= s


RANDAUGMENT_OP_CHANCE = 0.5  # timm's default chance of applying each chosen operation ("p" in its config string)


def _rarer_randaugment(config: str, s: float) -> str:
    """timm's RandAugment config string (``rand-m9-mstd0.5-inc1``) with the chance of each operation multiplied
    by `s` (its ``p``, 0.5 unless given)."""
    parts = config.split("-")
    chance = next((float(part[1:]) for part in parts if re.fullmatch(r"p[\d.]+", part)), RANDAUGMENT_OP_CHANCE)
    kept = [part for part in parts if not re.fullmatch(r"p[\d.]+", part)]
    return "-".join([*kept, f"p{chance * s:.6g}"])


RULES: dict[str, Callable[[Recipe, Budget], None]] = {
    "warmup": warmup,
    "schedule": linear_to_zero,
    "ema": ema_horizon,
    "regularization": regularization,
}


VARIANTS: dict[str, Mapping[str, Any]] = {"regularization": STRENGTHS}  # rules that may name how they act


def check_rules(rules: Mapping[str, Any]) -> None:
    """Fail on a `scale.budget` key that is not a rule, or a value that is neither true, false nor (for a rule with
    variants) one of its variants' names."""
    for name, on in rules.items():
        if name not in RULES:
            raise ConfigError(f"scale.budget.{name} is not a budget rule; the rules are {', '.join(RULES)} "
                             "(roadmap/training/budget.py).")
        variants = VARIANTS.get(name, {})
        if not isinstance(on, bool) and on not in variants:
            names = "".join(f", or {v}" for v in variants)
            raise ConfigError(f"scale.budget.{name}={on!r} is invalid: it must be true or false{names}.")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe as dotted keys: `schedule.warmup_epochs`, as records name what fitting changed."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def fit_recipe(recipe: DictConfig | Mapping[str, Any], budget: Budget, rules: Mapping[str, bool],
               eval_resize_ratio: float | None = None) -> tuple[DictConfig, dict[str, dict[str, Any]]]:
    """The recipe fitted to the run's budget, and each value that changed: `{key: {"recipe": x, "used": y}}`.

    `eval_resize_ratio` (``scale.eval_resize_ratio``), when given, replaces the recipe's before the rules run, so
    that the regularization rule shrinks the training crops towards the evaluation's framing, not ImageNet's.
    """
    check_rules(rules)
    # Resolved in place: the recipe interpolates other parts of the config (the regime's stochastic depth).
    original = OmegaConf.to_container(recipe if isinstance(recipe, DictConfig) else OmegaConf.create(recipe),
                                      resolve=True)
    fitted = copy.deepcopy(original)
    if eval_resize_ratio is not None:
        fitted["augment"]["eval_resize_ratio"] = eval_resize_ratio
    stretch(fitted, budget)
    for name, rule in RULES.items():
        setting = rules.get(name, False)
        if setting is True:
            rule(fitted, budget)
        elif setting:  # a variant by name (regularization: sqrt)
            rule(fitted, budget, setting)
    before, after = flatten(original), flatten(fitted)
    changes = {key: {"recipe": before.get(key), "used": value} for key, value in after.items()
               if before.get(key) != value}
    return OmegaConf.create(fitted), changes
