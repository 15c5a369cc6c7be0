"""The ImageFolder loader's speed, measured (not tested): training img/s per number of workers, and a fake
ImageNet-like folder of smooth JPEGs to time it on where there is no ImageNet."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from PIL import Image

from roadmap.config.composition import compose

LOADER_SETTING = ("+step=modern_recipe", "data=imagenet", "scale=paper")  # 224 px, RandAugment, random erasing


def make_fake_folder(root: Path, classes: int = 2, per_class: int = 160, val_per_class: int = 4,
                     size: tuple[int, int] = (500, 375), seed: int = 0) -> Path:
    """An ImageFolder of smooth random JPEGs at ImageNet's typical size (500x375), for timing the loader without
    ImageNet: smooth content compresses and decodes like photographs, unlike noise."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
                grain = rng.normal(0, 16, (size[1], size[0], 3))
                pixels = np.clip(np.asarray(coarse, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.JPEG", quality=90)
    return root


def _cycle(loader: Any) -> Iterator[Any]:
    while True:
        yield from loader


def loader_throughput(root: Path, workers: Sequence[int], batch_size: int = 16, batches: int = 40,
                      overrides: Sequence[str] = ()) -> dict[int, float]:
    """Training img/s of the ImageFolder loader alone, per number of workers: the data module `run.py` builds for
    `+step=modern_recipe data=imagenet scale=paper data.root=<root>`, persistent workers, epochs repeated as
    needed. Timing starts once every worker has delivered its first batch, so worker start-up is left out."""
    speeds = {}
    for count in workers:
        cfg = compose([*LOADER_SETTING, f"data.root={root}", f"data.batch_size={batch_size}",
                       f"data.num_workers={count}", "data.persistent_workers=true", *overrides])
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        batch_iter = _cycle(datamodule.train_dataloader())
        for _ in range(max(1, count)):
            next(batch_iter)
        start = time.perf_counter()
        images = sum(len(next(batch_iter)[0]) for _ in range(batches))
        speeds[count] = images / (time.perf_counter() - start)
        del batch_iter  # shuts the workers down before the next setting starts its own
    return speeds
