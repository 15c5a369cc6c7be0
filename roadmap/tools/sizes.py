"""A job's sizes, counted before anything runs: its data set's images and classes without reading an image,
its network's parameters and GFLOPs on the meta device, once per distinct network (roadmap/tools/plan.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchvision.datasets.folder import IMG_EXTENSIONS

from roadmap.config.composition import build_model
from roadmap.errors import ConfigError
from roadmap.model.flops import complexity
from roadmap.training.budget import IMAGENET_TRAIN_IMAGES
from roadmap.training.recipe import ema_decay

IMAGENET_VAL_IMAGES = 50_000
IMAGENET_CLASSES = 1000
# Training and validation images of the data sets whose sizes are fixed, by the data module's class
FIXED_SIZES = {"FashionMNISTData": ("Fashion-MNIST", 60_000, 10_000), "CIFARData": ("CIFAR", 50_000, 10_000)}


def _count_images(folder: str) -> int:
    """Image files below `folder` (ImageFolder's extensions), by os.scandir: no image is opened."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                total += _count_images(entry.path)
            elif entry.name.lower().endswith(IMG_EXTENSIONS):
                total += 1
    return total


def _folder_split(root: Path, split: str) -> tuple[int, int]:
    """(images, classes) of <root>/<split>: the files counted per class folder."""
    classes = [entry.path for entry in os.scandir(root / split) if entry.is_dir()]
    return sum(_count_images(c) for c in classes), len(classes)


def data_sizes(data: DictConfig) -> tuple[int, int, int | None, str]:
    """(training images, validation images, classes, what was assumed) of a `data` config, without reading an
    image; subsets applied."""
    kind = data._target_.rpartition(".")[2]
    classes = data.num_classes
    if kind in FIXED_SIZES:
        label, train, val = FIXED_SIZES[kind]
        source = f"{label}: {train:,} training images"
    elif kind == "SyntheticData":
        train, val, source = data.train_size, data.val_size, f"synthetic: data.train_size={data.train_size:,}"
    elif kind == "FolderData":
        root = Path(str(data.root)).expanduser()
        if (root / "train").is_dir() and (root / "val").is_dir():
            (train, found), (val, _) = _folder_split(root, "train"), _folder_split(root, "val")
            classes = classes or found
            source = f"{root}: {train:,} training images counted in {found} class folders"
        else:
            train, val, classes = IMAGENET_TRAIN_IMAGES, IMAGENET_VAL_IMAGES, classes or IMAGENET_CLASSES
            source = f"ImageNet-1k's {train:,} training images ({root} does not hold train/ and val/)"
    else:
        raise ConfigError(f"data._target_={data._target_}: the plan does not know this data set's size.")
    if data.train_subset is not None and data.train_subset < train:
        train, source = data.train_subset, f"{source}; data.train_subset={data.train_subset:,}"
    if data.val_subset is not None:
        val = min(val, data.val_subset)
    return train, val, classes, source


def depthwise(model: nn.Module) -> bool:
    """Whether the network has a depthwise convolution: ConvNeXt's family, timed against ConvNeXt-T."""
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())


@dataclass(frozen=True)
class Network:
    params: int
    gflops: float  # at the run's input size
    convnext_like: bool
    ema: bool  # the recipe's EMA rule keeps a copy for this network


_NETWORKS: dict[str, Network] = {}


def network(cfg: DictConfig, recipe: DictConfig) -> Network:
    """The job's network built on the meta device (no memory, no weights), counted once per distinct network."""
    key = json.dumps([OmegaConf.to_container(cfg.model, resolve=True), cfg.scale.width_multiplier,
                      cfg.data.input_size, OmegaConf.to_container(recipe.ema, resolve=True)], sort_keys=True)
    if key not in _NETWORKS:
        with torch.device("meta"):
            model = build_model(cfg)
        model = model.to_empty(device="cpu")
        counted = complexity(model, cfg.data.input_size, cfg.data.in_chans)
        _NETWORKS[key] = Network(counted.params, counted.gflops, depthwise(model), ema_decay(model, recipe) is not None)
    return _NETWORKS[key]
