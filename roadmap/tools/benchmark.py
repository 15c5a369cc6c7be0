"""Measurement tools (not tests): training speed of our networks against timm's, and the image-folder loader.

`python scripts/bench.py [train] ...` times forward + backward + AdamW step of our ResNet-50 and ConvNeXt-T
(the roadmap's first and last steps, built from the configs) against timm's `resnet50` and `convnext_tiny`:
same process, input, batch, dtype and device, models interleaved round by round so that a change in the
machine's load hits every model alike; the median round is reported, with each model's peak memory.

`python scripts/bench.py loader --root DIR ...` times the training DataLoader alone (the modern recipe's
augmentations) per number of workers, on an ImageFolder and optionally on its pre-resized copy
(roadmap/data/prepare.py).

`python scripts/bench.py job <run.py overrides>` measures how much of the CPU a run spends training: the run's own
training img/s (data, step, logging) against the bare training step of the same network, shape and optimizer;
`--pipelines loader,device` runs the job once per data pipeline in each round.

`python scripts/bench.py data <run.py overrides>` times the training batches alone, per data pipeline (timm's
per-image loader, or the data set held on the device: roadmap/data/device.py), as a run would make them: the recipe
fitted to the run's budget, on the device the trainer would use.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image
from timm.optim import create_optimizer_v2
from torch import nn

from roadmap.config.composition import PAPER_SETTING, build_model, compose
from roadmap.data.prepare import resize_folder
from roadmap.results.records import atomic_write_text
from roadmap.training.recipe import build_optimizer
from roadmap.training.system import device_name, proc_status_mb, reset_peak_memory

CONVNEXT_STEP = "separate_downsampling"  # the roadmap's last step: ConvNeXt-T
# Per device: the CPU's defaults finish the whole comparison in a few minutes on 2 cores.
DEFAULTS = {
    "cuda": {"batch_size": 128, "image_size": 224, "steps": 10, "warmup": 5, "rounds": 5},
    "cpu": {"batch_size": 16, "image_size": 128, "steps": 1, "warmup": 2, "rounds": 5},
}
LOADER_SETTING = ("+step=modern_recipe", "data=imagenet", "scale=paper")  # 224 px, RandAugment, random erasing


@dataclass(frozen=True)
class ModelSpec:
    """A model named by how to build it, so that only the models asked for are built."""

    name: str
    timm_name: str | None = None  # timm.create_model(timm_name, pretrained=False, **timm_kwargs) ...
    timm_kwargs: tuple[tuple[str, Any], ...] = ()
    overrides: tuple[str, ...] = ()  # ... or else build_model(compose(overrides))
    versus: str | None = None  # the timm model this one is compared with (ours only)

    def build(self) -> nn.Module:
        if self.timm_name is not None:
            return timm.create_model(self.timm_name, pretrained=False, **dict(self.timm_kwargs))
        return build_model(compose(self.overrides))


def default_specs(drop_path: float) -> list[ModelSpec]:
    """Ours and timm's ResNet-50 and ConvNeXt-T at 1000 classes.

    The ResNet-50s have no stochastic depth (the original recipe has none, timm's default is 0). Both
    ConvNeXt-Ts get `drop_path` (ours through `recipe.stochastic_depth`, which the step's modern recipe
    otherwise sets to the regime's 0.1; timm's through `drop_path_rate`), and both have layer scale.
    """
    convnext = (*PAPER_SETTING, f"+step={CONVNEXT_STEP}", f"recipe.stochastic_depth={drop_path}")
    return [
        ModelSpec("ours_resnet50", overrides=PAPER_SETTING, versus="timm_resnet50"),
        ModelSpec("timm_resnet50", timm_name="resnet50"),
        ModelSpec("ours_convnext_t_conv", overrides=(*convnext, "model.pointwise=conv"), versus="timm_convnext_tiny"),
        ModelSpec("ours_convnext_t_linear", overrides=(*convnext, "model.pointwise=linear"),
                  versus="timm_convnext_tiny"),
        ModelSpec("timm_convnext_tiny", timm_name="convnext_tiny", timm_kwargs=(("drop_path_rate", drop_path),)),
    ]


@dataclass(frozen=True)
class Settings:
    """What every model is measured under."""

    device: str
    batch_size: int
    image_size: int
    steps: int  # timed steps per model per round
    warmup: int  # untimed steps per model before the first round
    rounds: int
    amp: bool  # bfloat16 autocast
    channels_last: bool
    compile: bool
    threads: int
    num_classes: int = 1000


@dataclass
class Row:
    name: str
    images_per_second: float  # median over rounds
    rounds: list[float]
    peak_memory_mb: float | None
    versus: str | None
    ratio: float | None  # ours / timm, median img/s


def inputs(settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """One random batch, the same for every model."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(settings.batch_size, 3, settings.image_size, settings.image_size, generator=generator)
    y = torch.randint(settings.num_classes, (settings.batch_size,), generator=generator)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    return x.to(settings.device, memory_format=memory_format), y.to(settings.device)


def setup_training(model: nn.Module, settings: Settings) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The model on the device in training mode, and AdamW as the modern recipe builds it (timm's factory,
    no weight decay on norms and biases)."""
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = model.to(settings.device, memory_format=memory_format).train()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=0.05)
    return (torch.compile(model) if settings.compile else model), optimizer


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               amp: bool) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc), so that the next model's resident-set growth is its own
    and not what an earlier model freed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def resident_mb(model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """What a model keeps between steps: weights, buffers and AdamW's moments (gradients are freed)."""
    states = [t for state in optimizer.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    tensors = (*model.parameters(), *model.buffers(), *states)
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def step_memory(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                settings: Settings, steps: int) -> float | None:
    """Run `steps` training steps and return their peak memory: what the model keeps between steps plus the most
    the steps added (gradients, activations, workspace). CUDA: torch's peak allocation; CPU: the growth of the peak
    resident set (VmHWM, reset through /proc/self/clear_refs), a little above the allocations themselves."""
    cuda = torch.device(settings.device).type == "cuda"
    _sync(settings.device)
    if not cuda:
        gc.collect()
        _release_freed_memory()
    before = torch.cuda.memory_allocated() / 2**20 if cuda else proc_status_mb("VmRSS")
    reset_peak_memory()
    for _ in range(steps):
        train_step(model, optimizer, x, y, settings.amp)
    _sync(settings.device)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else proc_status_mb("VmHWM")
    return None if peak is None or before is None else resident_mb(model, optimizer) + peak - before


def time_training(models: Mapping[str, nn.Module], settings: Settings) -> dict[str, tuple[list[float], float | None]]:
    """Images per second of each model in each round, and its peak memory.

    Warm-up: one step of every model first (AdamW's state, and the process's one-time costs, which would otherwise
    count as the first model's memory), then the other warm-up steps of each model in turn, where its memory is
    measured (allocator, oneDNN/cuDNN kernel choice and compilation settle meanwhile). Then each round times
    `steps` steps of every model, so that a change in the machine's load hits all alike; with three models or
    more, each round starts one model later, so that every model takes every place and none runs twice in a row.
    """
    x, y = inputs(settings)
    prepared = {name: setup_training(model, settings) for name, model in models.items()}
    for model, optimizer in prepared.values():
        train_step(model, optimizer, x, y, settings.amp)
    memory = {name: step_memory(*prepared[name], x, y, settings, settings.warmup - 1) for name in models}
    speeds: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(settings.rounds):
        shift = r % len(names) if len(names) > 2 else 0
        for name in names[shift:] + names[:shift]:
            model, optimizer = prepared[name]
            start = time.perf_counter()
            for _ in range(settings.steps):
                train_step(model, optimizer, x, y, settings.amp)
            _sync(settings.device)
            speeds[name].append(settings.steps * settings.batch_size / (time.perf_counter() - start))
    return {name: (speeds[name], memory[name]) for name in names}


def benchmark(specs: Sequence[ModelSpec], settings: Settings) -> list[Row]:
    """Median training img/s of every model (interleaved), its peak memory, and ours / timm where both ran."""
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        measured = time_training({spec.name: spec.build() for spec in specs}, settings)
    finally:
        torch.set_num_threads(threads)
    medians = {name: statistics.median(speeds) for name, (speeds, _) in measured.items()}
    rows = []
    for spec in specs:
        versus = spec.versus if spec.versus in medians else None
        speeds, memory = measured[spec.name]
        ratio = medians[spec.name] / medians[versus] if versus else None
        rows.append(Row(spec.name, medians[spec.name], speeds, memory, versus, ratio))
    return rows


def describe(settings: Settings) -> str:
    return (
        f"{settings.device} ({device_name(settings.device)}), {settings.threads} torch threads; batch "
        f"{settings.batch_size}, {settings.image_size}x{settings.image_size} px, "
        f"{'bf16 autocast' if settings.amp else 'fp32'}, {'channels-last' if settings.channels_last else 'NCHW'} "
        f"input, {'torch.compile' if settings.compile else 'eager'}; {settings.warmup} warm-up steps per model, then "
        f"{settings.rounds} rounds x {settings.steps} timed steps per model, interleaved"
    )


def rows_to_markdown(rows: Sequence[Row]) -> str:
    lines = ["| model | img/s (median) | img/s (min-max) | peak memory MB | ours / timm |", "|---|---|---|---|---|"]
    for row in rows:
        memory = "n/a" if row.peak_memory_mb is None else f"{row.peak_memory_mb:.0f}"
        ratio = "" if row.ratio is None else f"{row.ratio:.3f} (vs {row.versus})"
        lines.append(f"| {row.name} | {row.images_per_second:.1f} | {min(row.rounds):.1f}-{max(row.rounds):.1f} | "
                     f"{memory} | {ratio} |")
    return "\n".join(lines)


# --- The loader ------------------------------------------------------------------------------------------


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


# --- A proxy job against its bare training step -------------------------------------------------------------


def step_throughput(cfg: DictConfig, rounds: int, steps: int) -> list[float]:
    """Training img/s of the bare step of `cfg`'s network at its scale: forward, the loss, backward and the recipe's
    optimizer, on one random batch of the run's shape and memory format, in this process; one value per round."""
    model = build_model(cfg).train()
    memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    generator = torch.Generator().manual_seed(0)
    size, batch = cfg.data.input_size, cfg.data.batch_size
    x = torch.randn(batch, cfg.data.in_chans, size, size, generator=generator).contiguous(memory_format=memory_format)
    y = torch.randint(cfg.data.num_classes, (batch,), generator=generator)
    optimizer = build_optimizer(model, cfg.recipe, 1e-4)

    def step() -> None:
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    speeds = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        speeds.append(steps * batch / (time.perf_counter() - start))
    return speeds


def job_throughput(overrides: Sequence[str], batches: int, out_dir: Path) -> float:
    """Training img/s of the run `python run.py <overrides>` would make, measured by the run itself over its first
    `batches` batches (one epoch cut short; validation on 1,000 images)."""
    from roadmap.training.job import train  # here: only this mode needs Lightning

    cfg = compose([*overrides, "scale.epochs=1", f"+trainer.limit_train_batches={batches}", "scale.val_subset=1000",
                   "logger.wandb.enabled=false"])
    return train(cfg, out_dir)["train_images_per_second"]


def job_main(args: argparse.Namespace) -> None:
    cfg = compose(args.overrides)
    print(f"{' '.join(args.overrides) or '(no overrides)'}: {cfg.name} at the {cfg.scale.name} scale, batch "
          f"{cfg.data.batch_size}, {cfg.data.input_size} px, {'channels-last' if cfg.trainer.channels_last else 'NCHW'}"
          f"; {device_name('cpu')}, {torch.get_num_threads()} torch threads")
    variants = {p: (f"data.pipeline={p}",) for p in args.pipelines} if args.pipelines else {"job": ()}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # bare step, job(s), bare step, ...: a drift in the machine's speed hits all
            names = list(variants)[r % len(variants):] + list(variants)[:r % len(variants)]
            for name in names:
                bare = statistics.median(step_throughput(cfg, 3, args.steps))
                job = job_throughput([*args.overrides, *variants[name]], args.batches, Path(tmp) / f"{name}{r}")
                rows[name].append((bare, job))
                label = "" if name == "job" else f" {name}"
                print(f"round {r}{label}: bare step {bare:.0f} img/s, job {job:.0f} img/s, job / bare {job / bare:.3f}")
    for name, pairs in rows.items():
        bare, job = (statistics.median(column) for column in zip(*pairs, strict=True))
        ratio = statistics.median(j / b for b, j in pairs)
        label = "" if name == "job" else f" {name}"
        print(f"median{label}: bare step {bare:.0f} img/s, job {job:.0f} img/s, job / bare {ratio:.3f}")


# --- The data pipelines alone -----------------------------------------------------------------------------


def data_throughput(overrides: Sequence[str], pipeline: str, batches: int) -> float:
    """Training img/s of one data pipeline alone: the batches a run of `overrides` trains on (its recipe fitted to its
    budget, as train.py fits it), on its trainer's device, each waited for there (a GPU is synchronised)."""
    import lightning  # here: only this mode needs Lightning

    from roadmap.training.job import fit_to_run

    cfg = compose([*overrides, f"data.pipeline={pipeline}"])
    trainer = lightning.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False, max_epochs=1,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    datamodule = fit_to_run(cfg, trainer)[0]
    datamodule.trainer = trainer  # where the batches go, and the pipeline a run there would take
    device = trainer.strategy.root_device
    batch_iter = _cycle(datamodule.train_dataloader())
    next(batch_iter)  # the device copy of the data set, and the loader's start, are made once per run
    _sync(str(device))
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        x, y = next(batch_iter)
        images += len(x.to(device, non_blocking=True))
    _sync(str(device))
    return images / (time.perf_counter() - start)


def data_main(args: argparse.Namespace) -> None:
    cfg = compose(args.overrides)
    print(f"{' '.join(args.overrides) or '(no overrides)'}: {cfg.name}, {cfg.recipe.name} recipe, batch "
          f"{cfg.data.batch_size}, {cfg.data.input_size} px, on {cfg.trainer.accelerator} "
          f"({device_name('cuda' if cfg.trainer.accelerator == 'gpu' else 'cpu')}), {torch.get_num_threads()} torch "
          f"threads; {args.batches} batches per pipeline per round\n")
    speeds: dict[str, list[float]] = {p: [] for p in args.pipelines}
    for r in range(args.rounds):
        for pipeline in args.pipelines[r % len(args.pipelines):] + args.pipelines[:r % len(args.pipelines)]:
            speeds[pipeline].append(data_throughput(args.overrides, pipeline, args.batches))
    print("| pipeline | img/s (median) | img/s (rounds) |\n|---|---|---|")
    for pipeline, rounds in speeds.items():
        print(f"| {pipeline} | {statistics.median(rounds):.0f} | {', '.join(f'{v:.0f}' for v in rounds)} |")


# --- Command line ----------------------------------------------------------------------------------------


def _at_least_2(text: str) -> int:
    """Memory is measured in the warm-up steps after the first, once every model holds its AdamW state."""
    if int(text) < 2:
        raise argparse.ArgumentTypeError("at least 2: memory is measured in the warm-up steps after the first")
    return int(text)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def train_main(args: argparse.Namespace) -> None:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    defaults = DEFAULTS["cuda" if torch.device(device).type == "cuda" else "cpu"]
    settings = Settings(
        device=device, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        threads=torch.get_num_threads(),
        **{key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()},
    )
    specs = default_specs(args.drop_path)
    if args.models:
        unknown = set(args.models) - {spec.name for spec in specs}
        if unknown:
            raise SystemExit(f"unknown --models {sorted(unknown)}; choose from {[spec.name for spec in specs]}")
        specs = [spec for spec in specs if spec.name in args.models]
    step_pointwise = compose([*PAPER_SETTING, f"+step={CONVNEXT_STEP}"]).model.pointwise
    print("Training throughput: forward + backward + AdamW step, 1000 classes, one random batch")
    print(f"device: {describe(settings)}")
    print(f"stochastic depth {args.drop_path} on both ConvNeXt-T (ours: recipe.stochastic_depth, timm: drop_path_rate)"
          f", none on the ResNet-50s; the roadmap step {CONVNEXT_STEP} uses model.pointwise={step_pointwise}")
    print("peak memory: weights + AdamW state + the most a training step added, "
          + ("CUDA max allocated\n" if torch.device(device).type == "cuda" else "peak resident set growth (VmHWM)\n"))
    rows = benchmark(specs, settings)
    print(rows_to_markdown(rows))
    if args.json:
        record = {"settings": asdict(settings), "device_name": device_name(device), "drop_path": args.drop_path,
                  "rows": [asdict(row) for row in rows]}
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")


def loader_main(args: argparse.Namespace) -> None:
    if args.make_fake and not args.root.exists():
        make_fake_folder(args.root)
    folders = {"original": args.root}
    if args.resized:
        report = resize_folder(args.root, args.resized, size=args.size)
        print(f"pre-resized copy at {args.resized}: {report.summary()}")
        folders["resized"] = args.resized
    print(f"ImageFolder loader, modern recipe ({' '.join(LOADER_SETTING)}), batch {args.batch_size}, "
          f"{args.batches} timed batches per setting; {device_name('cpu')}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads in the main process (a worker uses 1)\n")
    print("| folder | workers | img/s |\n|---|---|---|")
    for label, folder in folders.items():
        for count, speed in loader_throughput(folder, args.workers, args.batch_size, args.batches).items():
            print(f"| {label} | {count} | {speed:.1f} |")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train", "loader", "job", "data", "-h", "--help"):
        argv = ["train", *argv]  # the sub-command defaults to train
    parser = argparse.ArgumentParser(description="Benchmark training speed (ours vs timm) or the ImageFolder loader.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="training img/s and peak memory, ours against timm (the default)")
    train.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when present)")
    train.add_argument("--batch-size", type=int, help="default: 128 on CUDA, 16 on CPU")
    train.add_argument("--image-size", type=int, help="default: 224 on CUDA, 128 on CPU")
    train.add_argument("--steps", type=int, help="timed steps per model per round (default: 10 on CUDA, 1 on CPU)")
    train.add_argument("--warmup", type=_at_least_2,
                       help="untimed steps per model first, where memory is measured (default: 5 on CUDA, 2 on CPU)")
    train.add_argument("--rounds", type=int, help="interleaved rounds; the median is reported (default 5)")
    train.add_argument("--models", type=lambda s: s.split(","), help="comma-separated subset (default: all)")
    train.add_argument("--drop-path", type=float, default=0.1, help="both ConvNeXt-Ts' stochastic depth (0.1)")
    train.add_argument("--channels-last", action="store_true", help="model and input in channels-last layout")
    train.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    train.add_argument("--compile", action="store_true", help="torch.compile every model")
    train.add_argument("--json", type=Path, help="also write the numbers to this file")
    train.set_defaults(run=train_main)

    loader = commands.add_parser("loader", help="training DataLoader img/s per number of workers")
    loader.add_argument("--root", type=Path, required=True, help="ImageFolder root: <root>/train/<class>/<image>")
    loader.add_argument("--make-fake", action="store_true", help="create a fake ImageNet-like --root if missing")
    loader.add_argument("--resized", type=Path, help="also build (or finish) a pre-resized copy here and time it")
    loader.add_argument("--size", type=int, default=256, help="shorter side of the pre-resized copy (256)")
    loader.add_argument("--workers", type=_ints, default=[0, 1, 2], help="comma-separated worker counts (0,1,2)")
    loader.add_argument("--batch-size", type=int, default=16)
    loader.add_argument("--batches", type=int, default=40, help="timed batches per setting (40)")
    loader.set_defaults(run=loader_main)

    job = commands.add_parser("job", help="a run's training img/s against its network's bare training step")
    job.add_argument("overrides", nargs="*", help="the run's overrides, as for run.py (e.g. +step=gelu)")
    job.add_argument("--rounds", type=int, default=3, help="bare-step / job pairs; the medians are reported (3)")
    job.add_argument("--steps", type=int, default=10, help="timed bare steps per measurement (10)")
    job.add_argument("--batches", type=int, default=60, help="training batches of each job (60)")
    job.add_argument("--pipelines", type=lambda s: s.split(","),
                     help="comma-separated data pipelines, one job each per round (default: the config's)")
    job.set_defaults(run=job_main)

    data = commands.add_parser("data", help="training batches per second of each data pipeline, alone")
    data.add_argument("overrides", nargs="*", help="the run's overrides, as for run.py (e.g. +step=modern_recipe)")
    data.add_argument("--pipelines", type=lambda s: s.split(","), default=["loader", "device"],
                      help="comma-separated data pipelines (loader,device)")
    data.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (3)")
    data.add_argument("--batches", type=int, default=50, help="timed batches per pipeline per round (50)")
    data.set_defaults(run=data_main)

    args = parser.parse_args(argv)
    args.run(args)
