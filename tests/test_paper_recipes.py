"""Both recipes at the paper's scale against their references: every key against its table, and the learning rate
over the whole run, epoch by epoch, against the reference's own schedule (torchvision's StepLR; ConvNeXt's cosine
with warm-up; Goyal et al.'s gradual warm-up at batch 4096). Nothing trains."""

import math

import numpy as np
import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from roadmap.config.composition import CONF_DIR, compose
from roadmap.training.budget import IMAGENET_TRAIN_IMAGES, Budget, fit_recipe, flatten
from roadmap.training.recipe import build_scheduler, gradual_warmup_epochs, scaled_lr

PAPER = ["scale=paper", "data=imagenet", "data.root=/imagenet", "data.num_classes=1000"]

# torchvision's reference ResNet-50 recipe (references/classification/train.py, as run for the v1 weights): the
# paper's step 0 (Table 10, 76.1), and Goyal et al.'s gradual warm-up for batches above 256.
TORCHVISION = {
    "name": "original", "epochs": 90, "optimizer.name": "sgd", "optimizer.momentum": 0.9, "optimizer.betas": None,
    "optimizer.weight_decay": 1e-4, "optimizer.decay_norm_and_bias": True, "lr.base": 0.1,
    "lr.base_batch_size": 256, "lr.gradual_warmup_epochs": 5, "schedule.name": "step",
    "schedule.warmup_epochs": 0, "schedule.step_epochs": 30, "schedule.gamma": 0.1, "schedule.min_lr": 0.0,
    "schedule.per_step": False, "augment.train_crop": "random_resized", "augment.train_crop_scale": [0.08, 1.0],
    "augment.train_crop_ratio": [0.75, 1.3333333], "augment.hflip": 0.5, "augment.randaugment": None,
    "augment.mixup": 0.0, "augment.cutmix": 0.0, "augment.mixup_switch_prob": 0.5, "augment.mixup_prob": 1.0,
    "augment.random_erasing": 0.0, "augment.label_smoothing": 0.0, "augment.eval_resize_ratio": 0.875,
    "augment.interpolation": "bilinear", "stochastic_depth": 0.0, "layer_scale": None, "ema.decay": 0.9999,
    "ema.use": "never", "grad_clip": None,
}
# The paper's Table 5 (ImageNet-1K, ConvNeXt-T), with the authors' main.py where the table is silent (min lr,
# Mixup's switch chance, interpolation); EMA is off for BatchNorm networks (Section 2.1's footnote).
TABLE_5 = {
    "name": "modern", "epochs": 300, "optimizer.name": "adamw", "optimizer.momentum": None,
    "optimizer.betas": [0.9, 0.999], "optimizer.weight_decay": 0.05, "optimizer.decay_norm_and_bias": False,
    "lr.base": 4e-3, "lr.base_batch_size": 4096, "lr.gradual_warmup_epochs": 0, "schedule.name": "cosine",
    "schedule.warmup_epochs": 20, "schedule.step_epochs": 30, "schedule.gamma": 0.1, "schedule.min_lr": 1e-6,
    "schedule.per_step": True, "augment.train_crop": "random_resized", "augment.train_crop_scale": [0.08, 1.0],
    "augment.train_crop_ratio": [0.75, 1.3333333], "augment.hflip": 0.5,
    "augment.randaugment": "rand-m9-mstd0.5-inc1", "augment.mixup": 0.8, "augment.cutmix": 1.0,
    "augment.mixup_switch_prob": 0.5, "augment.mixup_prob": 1.0, "augment.random_erasing": 0.25,
    "augment.label_smoothing": 0.1, "augment.eval_resize_ratio": 0.875, "augment.interpolation": "bicubic",
    "stochastic_depth": 0.1, "layer_scale": 1e-6, "ema.decay": 0.9999, "ema.use": "no_batchnorm", "grad_clip": None,
}


@pytest.mark.parametrize(("overrides", "table"), [([], TORCHVISION), (["+step=separate_downsampling"], TABLE_5)],
                         ids=["original", "modern"])
def test_every_recipe_key_at_the_paper_scale_is_its_references(overrides, table):
    cfg = compose([*PAPER, *overrides])
    recipe = flatten(OmegaConf.to_container(cfg.recipe, resolve=True))
    assert recipe.keys() == table.keys()  # a new key needs its reference value here too
    differ = {key: (recipe[key], value) for key, value in table.items()
              if not (recipe[key] == value or isinstance(value, float | list) and recipe[key] == pytest.approx(value))}
    assert differ == {}
    assert cfg.scale.global_batch_size == 4096 and cfg.scale.lr_scaling == "linear" and not cfg.scale.budget


def lr_per_step(overrides: list[str], steps_per_epoch: int | None = None) -> tuple[np.ndarray, int]:
    """The lr of every optimizer step of a paper-scale run, as the run builds its schedule (the recipe fitted to
    the run, the lr scaled to the global batch, the scheduler stepped as Lightning steps it), and the steps per
    epoch: ImageNet-1K's training images in whole global batches, as a run's loader gives them."""
    cfg = compose([*PAPER, *overrides])
    batch = cfg.scale.global_batch_size
    steps_per_epoch = steps_per_epoch or IMAGENET_TRAIN_IMAGES // batch
    budget = Budget.of(cfg.recipe, cfg.scale.epochs, steps_per_epoch)
    recipe, changes = fit_recipe(cfg.recipe, budget, cfg.scale.budget, cfg.scale.eval_resize_ratio)
    assert changes == {}  # the paper's scale is the recipe's own length: nothing fitted
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=scaled_lr(recipe, batch, cfg.scale.lr_scaling))
    scheduler, interval = build_scheduler(optimizer, recipe, steps_per_epoch)
    lrs = []
    for epoch in range(recipe.epochs):
        for step in range(steps_per_epoch):
            lrs.append(optimizer.param_groups[0]["lr"])
            if interval == "step":
                scheduler.step_update(num_updates=epoch * steps_per_epoch + step + 1)
        if interval == "epoch":
            scheduler.step(epoch=epoch + 1)
    return np.array(lrs), steps_per_epoch


def torchvision_step_lr(lr: float, epochs: int = 90) -> list[float]:
    """torchvision's reference schedule: torch's StepLR(step_size=30, gamma=0.1), stepped once per epoch."""
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


def test_the_original_recipe_at_batch_256_is_torchvisions_step_lr_exactly():
    lrs, per_epoch = lr_per_step(["scale.global_batch_size=256"])
    assert per_epoch == 5004  # 1,281,167 // 256
    assert lrs[::per_epoch] == pytest.approx(torchvision_step_lr(0.1), rel=1e-12)
    epochs = lrs.reshape(90, per_epoch)
    assert (epochs == epochs[:, :1]).all()  # constant within each epoch, as torchvision's is: no warm-up at 256


def test_the_original_recipe_at_batch_4096_warms_up_gradually_then_follows_step_lr():
    lrs, per_epoch = lr_per_step([])
    warmup = 5 * per_epoch
    # Goyal et al. 2017, Section 2.2: from the base batch's lr (0.1) to the linear rule's (0.1 x 4096 / 256 = 1.6),
    # the same rise every iteration over the first 5 epochs
    goyal = 0.1 + (1.6 - 0.1) * np.arange(warmup) / warmup
    assert lrs[:warmup] == pytest.approx(goyal, rel=1e-9)
    # then torchvision's StepLR at the scaled lr: x0.1 after epochs 30 and 60, whole epochs at a time
    assert lrs[::per_epoch][5:] == pytest.approx(torchvision_step_lr(1.6)[5:], rel=1e-12)
    assert lrs.max() == pytest.approx(1.6)


def convnext_cosine(base: float, final: float, epochs: int, per_epoch: int, warmup_epochs: int) -> np.ndarray:
    """ConvNeXt's own schedule (facebookresearch/ConvNeXt, utils.cosine_scheduler, start_warmup_value 0), restated:
    a linear warm-up over whole epochs, then a half cosine to `final` at the last iteration."""
    warmup_iters = warmup_epochs * per_epoch
    warm = np.linspace(0.0, base, warmup_iters)
    iters = np.arange(epochs * per_epoch - warmup_iters)
    return np.concatenate([warm, final + 0.5 * (base - final) * (1 + np.cos(math.pi * iters / len(iters)))])


def test_the_modern_recipe_at_batch_4096_is_convnexts_cosine_with_warm_up():
    lrs, per_epoch = lr_per_step(["+step=separate_downsampling"])
    reference = convnext_cosine(4e-3, 1e-6, 300, per_epoch, 20)
    assert len(lrs) == len(reference) == 300 * 312
    # epoch by epoch; the warm-up's linspace ends on the peak one iteration sooner (1 / 6,240 of it), hence 1e-3
    assert lrs[::per_epoch] == pytest.approx(reference[::per_epoch], rel=1e-3, abs=1e-9)
    assert lrs[20 * per_epoch:] == pytest.approx(reference[20 * per_epoch:], rel=1e-9)  # the cosine: exactly
    assert gradual_warmup_epochs(compose([*PAPER, "+step=modern_recipe"]).recipe, 4e-3) == 0


def test_the_gradual_warm_up_keeps_its_share_of_a_shorter_run_and_spares_the_proxy():
    proxy = compose()  # SGD at batch 128 under the proxy's square-root rule: 0.071, below the base lr
    assert gradual_warmup_epochs(proxy.recipe, scaled_lr(proxy.recipe, 128, proxy.scale.lr_scaling)) == 0
    recipe, changes = fit_recipe(compose(PAPER).recipe, Budget.of(compose(PAPER).recipe, 9, 100), {})
    assert recipe.lr.gradual_warmup_epochs == pytest.approx(0.5)  # 5 of 90 epochs stays 5 of 90 of a 9-epoch run
    assert changes["lr.gradual_warmup_epochs"] == {"recipe": 5, "used": pytest.approx(0.5)}


def test_the_launchers_cores_per_gpu_follow_the_loaders_workers():
    """One setting, data.num_workers: the SLURM job asks for its workers plus the training process's two cores."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for workers in (None, 6):
            extra = [] if workers is None else [f"data.num_workers={workers}"]
            cfg = hydra_compose("train", [*PAPER, "trainer=slurm", *extra], return_hydra_config=True)
            assert cfg.hydra.launcher.cpus_per_task == cfg.data.num_workers + 2 == (workers or 10) + 2
