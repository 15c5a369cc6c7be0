"""The recipe objects: lr rule, weight-decay groups, schedules, Mixup, loss and the EMA rule."""

import pytest
import torch
from omegaconf import OmegaConf
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from torch import nn

from roadmap.config.composition import compose
from roadmap.model.network import RoadmapNet
from roadmap.training.recipe import (
    accumulation,
    build_loss,
    build_mixup,
    build_optimizer,
    build_scheduler,
    check_recipe,
    ema_decay,
    scaled_lr,
)

ORIGINAL = compose().recipe
MODERN = compose(["+step=modern_recipe"]).recipe
TINY_NET = {"depths": (1, 1), "widths": (8, 16)}


def lrs(scheduler, interval: str, steps: int) -> list[float]:
    """The lr used by each of `steps` updates (or epochs), as Lightning would step the scheduler."""
    out = []
    for t in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        if interval == "step":
            scheduler.step_update(num_updates=t + 1)
        else:
            scheduler.step(epoch=t + 1)
    return out


def test_linear_lr_scaling():
    assert scaled_lr(MODERN, 4096) == pytest.approx(4e-3)
    assert scaled_lr(MODERN, 128) == pytest.approx(4e-3 * 128 / 4096)
    assert scaled_lr(ORIGINAL, 512) == pytest.approx(0.2)
    assert scaled_lr(MODERN, 64, "sqrt") == pytest.approx(4e-3 / 8)
    assert scaled_lr(MODERN, 64, "none") == scaled_lr(MODERN, 4096) == pytest.approx(4e-3)
    per_optimizer = {"sgd": "sqrt", "adamw": "none"}
    assert scaled_lr(MODERN, 128, per_optimizer) == pytest.approx(4e-3)
    assert scaled_lr(ORIGINAL, 128, per_optimizer) == pytest.approx(0.1 * 0.5**0.5)
    with pytest.raises(ValueError, match="no rule for the recipe's optimizer 'adamw'.*scale.lr_scaling.adamw="):
        scaled_lr(MODERN, 128, {"sgd": "linear"})
    with pytest.raises(ValueError, match="scale.lr_scaling='cube'"):
        scaled_lr(MODERN, 64, "cube")


def test_modern_recipe_spares_norms_and_biases_from_weight_decay():
    net = RoadmapNet(**TINY_NET, norm="layer", layer_scale_init=1e-6)
    optimizer = build_optimizer(net, MODERN, 1e-3)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    for name, p in net.named_parameters():
        assert (id(p) in no_decay) == (p.ndim == 1), name  # norms, biases and layer scale are 1-D
        assert (id(p) in decay) == (p.ndim > 1), name


def test_original_recipe_is_plain_sgd_decaying_everything():
    net = RoadmapNet(**TINY_NET)
    optimizer = build_optimizer(net, ORIGINAL, 0.1)
    assert type(optimizer) is torch.optim.SGD
    assert all(g["weight_decay"] == 1e-4 and g["momentum"] == 0.9 and not g["nesterov"] for g in optimizer.param_groups)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))


def test_cosine_schedule_warms_up_then_decays_to_min_lr():
    optimizer = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=1.0)
    recipe = OmegaConf.merge(MODERN, {"epochs": 30, "schedule": {"warmup_epochs": 2}})
    scheduler, interval = build_scheduler(optimizer, recipe, steps_per_epoch=10)
    assert interval == "step"
    seen = lrs(scheduler, interval, 300)
    assert seen[0] == 0 and seen[10] == pytest.approx(0.5) and seen[20] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(seen[20:], seen[21:], strict=False))
    assert seen[-1] == pytest.approx(1e-6, abs=1e-4)


def test_step_schedule_drops_tenfold_every_third_of_training():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)  # above the base lr: no gradual warm-up here
    recipe = OmegaConf.merge(ORIGINAL, {"epochs": 9, "schedule": {"step_epochs": 3},
                                        "lr": {"gradual_warmup_epochs": 0}})
    scheduler, interval = build_scheduler(optimizer, recipe, steps_per_epoch=5)
    assert interval == "epoch"
    assert lrs(scheduler, interval, 9) == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    recipe = OmegaConf.merge(recipe, {"epochs": 4, "schedule": {"step_epochs": 4 / 3}})
    scheduler, _ = build_scheduler(optimizer, recipe, steps_per_epoch=5)  # drops every 4/3 epochs
    assert lrs(scheduler, interval, 4) == pytest.approx([1, 1, 0.1, 0.01])


def test_mixup_and_loss_follow_the_recipe():
    assert build_mixup(ORIGINAL.augment, 10, 7) is None
    assert isinstance(build_loss(ORIGINAL.augment), nn.CrossEntropyLoss)
    mixup = build_mixup(MODERN.augment, 10, 8)
    x, y = mixup(torch.randn(8, 3, 8, 8), torch.arange(8) % 10)
    assert y.shape == (8, 10) and torch.allclose(y.sum(1), torch.ones(8))
    assert isinstance(build_loss(MODERN.augment), SoftTargetCrossEntropy)
    smoothing_only = OmegaConf.merge(ORIGINAL.augment, {"label_smoothing": 0.1})
    assert isinstance(build_loss(smoothing_only), LabelSmoothingCrossEntropy)
    with pytest.raises(ValueError, match="even batch size.*data.batch_size=7"):
        build_mixup(MODERN.augment, 10, 7)


def test_ema_only_for_models_without_batchnorm():
    assert ema_decay(RoadmapNet(**TINY_NET), MODERN) is None
    assert ema_decay(RoadmapNet(**TINY_NET, norm="layer"), MODERN) == 0.9999
    assert ema_decay(RoadmapNet(**TINY_NET, norm="layer"), ORIGINAL) is None


@pytest.mark.parametrize(("key", "value"), [
    ("optimizer.name", "adam"), ("schedule.name", "poly"), ("ema.use", "sometimes"), ("lr.base", -1.0),
    ("augment.random_erasing", 1.5), ("augment.mixup", -0.1), ("schedule.warmup_epochs", 300)])
def test_invalid_recipe_value_is_named(key, value):
    recipe = OmegaConf.merge(MODERN, OmegaConf.from_dotlist([f"{key}={value}"]))
    with pytest.raises(ValueError, match=rf"recipe\.{key}="):
        check_recipe(recipe)


def test_gradient_accumulation_reaches_the_global_batch():
    assert accumulation(4096, 128, 8, 1) == 4
    assert accumulation(4096, 128, 8, 4) == 1
    with pytest.raises(ValueError, match="scale.global_batch_size=4096"):
        accumulation(4096, 96, 8, 1)
