"""How many loader workers one GPU needs: the training loader's work per image, measured in CPU time per core.

A run on an image folder decodes every JPEG and applies the recipe's per-image transforms (random-resized crop,
flip, RandAugment) in the loader's worker processes, then makes the batch: one uint8 tensor, normalised, with
Random Erasing (roadmap/data/transforms.py). Mixup and CutMix run on the GPU, in the training step, and are left
out. This measures that work, per recipe at the paper's scale (224 px), on ImageNet-sized JPEGs (500x375, quality
90) and on their pre-resized copy (shorter side 256, as `scripts/resize_images.py` writes it), in one process on
one thread. It counts CPU time (`time.process_time`), not wall time, so that other work on a busy machine does not
slow the figure: img/s per core is what one worker, given a core of its own, delivers.

Workers per GPU = ceil(the GPU's training img/s / img/s per core), for the training rates measured on the GPU
(experiments/gpu/rates.csv); the training process needs cores of its own beside them.

    python -m roadmap.tools.decoding --out experiments/gpu     # writes decoding.md and decoding.csv there
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import timm
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from roadmap.config.composition import TRAINING_PROCESS_CORES
from roadmap.data.prepare import resize_folder
from roadmap.data.transforms import BatchFinish, image_transform, seeded, to_batch
from roadmap.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
RATES_CSV = REPO / "experiments" / "gpu" / "rates.csv"
DECODING_CSV = REPO / "experiments" / "gpu" / "decoding.csv"
RECIPES = ("original", "modern")
FILE_KINDS = ("full", "resized")  # the JPEGs as ImageNet has them; the copy with shorter side RESIZED_SIDE
IMAGE_SIZE = (500, 375)  # width x height: ImageNet's typical training image
QUALITY = 90
RESIZED_SIDE = 256  # scripts/resize_images.py's default
INPUT_SIZE = 224  # scale=paper
BATCH = 32  # images per batch made (the per-batch part's cost is per image either way)
# The GPU rates the workers are counted for: (network, what, compile) rows of rates.csv
TARGETS = (("convnext_t", "whole_job", "compiled"), ("convnext_t", "bare_step", "compiled"),
           ("resnet50", "bare_step", "eager"))


def write_jpegs(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = IMAGE_SIZE,
                quality: int = QUALITY) -> list[Path]:
    """`count` JPEGs of `size` (width, height) in `folder`, a function of `seed`: smooth colour gradients and blobs
    with fine grain, which compress to ImageNet's typical 100-150 KB at quality 90 and decode like photographs
    (pure noise would not)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.float32)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.02, 0.08)
        texture = 40 * np.sin(freq * (x * np.cos(angle) + y * np.sin(angle)))[..., None]
        grain = rng.normal(0, 30, (height, width, 3))
        image = np.clip(pixels + texture + grain, 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.JPEG"
        Image.fromarray(image).save(path, quality=quality)
        paths.append(path)
    return paths


def make_images(root: Path, count: int, seed: int = 0) -> dict[str, list[Path]]:
    """The full-size JPEGs under `root`/full and their pre-resized copy under `root`/resized (one class folder
    each, as resize_folder keeps the layout): {file kind: paths}."""
    full = write_jpegs(root / "full" / "class0", count, seed)
    resize_folder(root / "full", root / "resized", RESIZED_SIDE, QUALITY)
    return {"full": full, "resized": [root / "resized" / path.relative_to(root / "full") for path in full]}


def recipe_augment(recipe: str) -> dict[str, Any]:
    """The recipe's augment block as a paper-scale run composes it (the scale fits nothing: budget {})."""
    from omegaconf import OmegaConf

    from roadmap.config.composition import compose  # Hydra only here: the rest runs without it

    cfg = compose(["scale=paper", f"recipe={recipe}"])
    return OmegaConf.to_container(cfg.recipe.augment, resolve=True)


def load_rgb(path: Path) -> Image.Image:
    """What the image folder's loader does per file (torchvision's pil_loader)."""
    with open(path, "rb") as file:
        return Image.open(file).convert("RGB")


def loader_work(augment: Mapping[str, Any], input_size: int = INPUT_SIZE) -> Callable[[Sequence[Path], int], Any]:
    """One batch's loader work as a run does it: each file decoded and transformed under the batch's seed, then
    the batch made, normalised and erased."""
    transform = image_transform(augment, input_size, True, IMAGENET_DEFAULT_MEAN)
    finish = BatchFinish(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, erasing=float(augment["random_erasing"]))

    def batch(paths: Sequence[Path], number: int) -> torch.Tensor:
        with seeded(0, 0, 0, number):
            return finish(to_batch([transform(load_rgb(path)) for path in paths]), True)

    return batch


@dataclass(frozen=True)
class Timing:
    recipe: str
    files: str
    images: int
    kb_per_file: float
    cpu_s: float  # the median round's CPU time
    wall_s: float  # the same round's wall-clock time
    cpu_range: tuple[float, float] = (0.0, 0.0)  # the fastest and slowest rounds' CPU time

    @property
    def per_core(self) -> float:
        return self.images / self.cpu_s

    @property
    def per_core_range(self) -> tuple[float, float]:
        """The slowest and fastest rounds' img/s per core."""
        return self.images / self.cpu_range[1], self.images / self.cpu_range[0]

    @property
    def wall(self) -> float:
        return self.images / self.wall_s


def time_work(work: Callable[[Sequence[Path], int], Any], paths: Sequence[Path],
              rounds: int) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of each of `rounds` passes over `paths` in batches, sorted by CPU time, after
    one warm-up batch (file cache, lazy imports)."""
    work(paths[:BATCH], 0)
    results = []
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for number, start in enumerate(range(0, len(paths), BATCH)):
            work(paths[start:start + BATCH], number)
        results.append((time.process_time() - cpu, time.perf_counter() - wall))
    return sorted(results)


def measure(paths: Mapping[str, Sequence[Path]], rounds: int = 3,
            augments: Mapping[str, Mapping[str, Any]] | None = None) -> list[Timing]:
    """One Timing per (recipe, file kind), in one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        timings = []
        for recipe in RECIPES:
            augment = (augments or {}).get(recipe) or recipe_augment(recipe)
            work = loader_work(augment)
            for kind in FILE_KINDS:
                files = paths[kind]
                results = time_work(work, files, rounds)
                cpu, wall = results[len(results) // 2]
                kb = statistics.mean(path.stat().st_size for path in files) / 1024
                timings.append(Timing(recipe, kind, len(files), round(kb, 1), cpu, wall,
                                      (results[0][0], results[-1][0])))
        return timings
    finally:
        torch.set_num_threads(threads)


def workers_needed(gpu_img_s: float, per_core: float) -> int:
    """Loader workers that feed a GPU training at `gpu_img_s`, each delivering `per_core` img/s."""
    return math.ceil(gpu_img_s / per_core)


@dataclass(frozen=True)
class Rate:
    device: str
    network: str
    what: str  # bare_step | whole_job
    compile: str  # eager | compiled
    img_s: float
    gflops_224: float
    source: str

    def cite(self) -> str:
        return f"{self.network} {self.what.replace('_', ' ')} {self.compile} {self.img_s:g} img/s ({self.source})"


def read_rates(path: Path = RATES_CSV) -> list[Rate]:
    with open(path, newline="") as file:
        return [Rate(r["device"], r["network"], r["what"], r["compile"], float(r["img_s"]), float(r["gflops_224"]),
                     r["source"]) for r in csv.DictReader(file)]


def rates_of(gpu: str, rates: Sequence[Rate]) -> dict[tuple[str, str, str], Rate]:
    """{(network, what, compile): Rate} of `gpu` (case-insensitive); a clear error naming the known devices."""
    chosen = {(r.network, r.what, r.compile): r for r in rates if r.device.lower() == gpu.lower()}
    if not chosen:
        known = sorted({r.device for r in rates})
        raise ConfigError(f"--gpu {gpu}: no measured rates for it in {path_shown(RATES_CSV)}; known: "
                          f"{', '.join(known)}.")
    return chosen


def path_shown(path: Path) -> str:
    """A path as the reports show it: from the repository's root where it lies inside."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def target_name(target: tuple[str, str, str]) -> str:
    return "_".join(target)


def table(timings: Sequence[Timing], rates: Mapping[tuple[str, str, str], float]) -> list[dict[str, Any]]:
    """One row per (recipe, file kind): the rates per core and wall, and the workers per GPU for each target."""
    rows = []
    for t in timings:
        row: dict[str, Any] = {"recipe": t.recipe, "files": t.files, "images": t.images, "kb_per_file": t.kb_per_file,
                               "img_s_per_core": round(t.per_core, 1),
                               "img_s_per_core_min": round(t.per_core_range[0], 1),
                               "img_s_per_core_max": round(t.per_core_range[1], 1),
                               "ms_per_image_cpu": round(1000 / t.per_core, 2),
                               "img_s_wall": round(t.wall, 1)}
        for target in TARGETS:
            if target in rates:
                row[f"workers_{target_name(target)}"] = workers_needed(rates[target], t.per_core)
        rows.append(row)
    return rows


def cpu_name() -> str:
    from roadmap.training.system import device_name

    return device_name("cpu") or platform.processor() or "cpu"


def to_markdown(rows: Sequence[Mapping[str, Any]], rates: Mapping[tuple[str, str, str], float], command: str,
                rounds: int) -> str:
    targets = [t for t in TARGETS if t in rates]
    load = os.getloadavg()[0]
    head = ["recipe", "files", "KB/file", "img/s per core (CPU time)", "rounds' min-max", "ms/image (CPU)",
            "img/s wall (reference)",
            *(f"workers: {t[0]} {t[1].replace('_', ' ')} {t[2]} ({rates[t]:.0f} img/s)" for t in targets)]
    lines = [
        "# Decoding: loader workers per GPU",
        "",
        f"`{command}`, {datetime.date.today().isoformat()}, on {cpu_name()} ({os.cpu_count()} cores); torch "
        f"{torch.__version__}, timm {timm.__version__}, Pillow {PIL.__version__}, Python {platform.python_version()}.",
        "",
        f"Per image, as a run's training loader does it: decode (PIL, to RGB), the recipe's per-image transforms at "
        f"{INPUT_SIZE} px at `scale=paper` (roadmap/data/transforms.py: random-resized crop, flip, and the modern "
        "recipe's RandAugment), then per batch of "
        f"{BATCH}: one uint8 tensor, normalised, Random Erasing (the modern recipe's 0.25). Mixup/CutMix run on the "
        f"GPU and are not counted. {rows[0]['images'] if rows else 0} synthetic {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEGs "
        f"(quality {QUALITY}) and their pre-resized copy (roadmap.data.prepare.resize_folder, shorter side "
        f"{RESIZED_SIDE}); the median of {rounds} passes, one process, one torch thread.",
        "",
        "**The figures are CPU time per core** (`time.process_time`): what one worker delivers with a core of its own. "
        f"Wall-clock rates are shown for reference only: this machine was busy with other work (load average "
        f"{load:.1f} on {os.cpu_count()} cores at the end), which slows even CPU time (shared caches): read the "
        "rounds' spread as the figures' uncertainty.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [row["recipe"], row["files"], f"{row['kb_per_file']:.0f}", f"{row['img_s_per_core']:.0f}",
                 f"{row['img_s_per_core_min']:.0f}-{row['img_s_per_core_max']:.0f}",
                 f"{row['ms_per_image_cpu']:.2f}", f"{row['img_s_wall']:.0f}",
                 *(str(row[f"workers_{target_name(t)}"]) for t in targets)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Workers per GPU = ceil(the GPU's training img/s / img/s per core), for the H100 rates of "
        "[rates.csv](rates.csv) (batch 128, 224 px, bf16, channels-last). The training process needs "
        f"{TRAINING_PROCESS_CORES} cores of its own beside them (its loop and the pin-memory thread): cores per GPU = "
        f"workers + {TRAINING_PROCESS_CORES}. The per-core rate is this CPU's; a faster core needs fewer workers. "
        "`scripts/plan.py` reads decoding.csv for each job's workers.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure the training loader's work per image in CPU time per core, "
                                     "per recipe, on full-size JPEGs and a pre-resized copy; derive the loader "
                                     "workers one GPU needs.")
    parser.add_argument("--images", type=int, default=200, help="JPEGs per setting (200)")
    parser.add_argument("--rounds", type=int, default=3, help="passes per setting; the median is kept (3)")
    parser.add_argument("--seed", type=int, default=0, help="the images' content (0)")
    parser.add_argument("--gpu", default="H100", help="the device of rates.csv whose rates the workers feed (H100)")
    parser.add_argument("--rates", type=Path, default=RATES_CSV, help="the GPU rates (experiments/gpu/rates.csv)")
    parser.add_argument("--out", type=Path, help="write decoding.md and decoding.csv to this folder")
    args = parser.parse_args(argv)
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be positive")
    try:
        rates = {key: rate.img_s for key, rate in rates_of(args.gpu, read_rates(args.rates)).items()}
    except ConfigError as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory(prefix="decoding-") as tmp:
        paths = make_images(Path(tmp), args.images, args.seed)
        timings = measure(paths, args.rounds)
    rows = table(timings, rates)
    command = "python -m roadmap.tools.decoding " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = to_markdown(rows, rates, command.strip(), args.rounds)
    print(markdown)
    if args.out is not None:
        from roadmap.results.records import atomic_write_text
        from roadmap.results.tables import to_csv

        atomic_write_text(args.out / "decoding.md", markdown)
        atomic_write_text(args.out / "decoding.csv", to_csv(rows))


if __name__ == "__main__":
    main()
