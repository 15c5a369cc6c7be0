"""Training speed, measured (not tested): our ResNet-50 and ConvNeXt-T against timm's, step by step with their peak
memory; a run against the bare training step of its network; each data pipeline alone, as a run makes its batches."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timm
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from timm.optim import create_optimizer_v2
from torch import nn

from roadmap.config.composition import PAPER_SETTING, build_model, compose
from roadmap.errors import ConfigError
from roadmap.tools.loader import _cycle
from roadmap.training.recipe import build_optimizer
from roadmap.training.system import device_name, proc_status_mb, reset_peak_memory, training_device

if TYPE_CHECKING:
    from lightning.pytorch.profilers import Profiler

CONVNEXT_STEP = "separate_downsampling"  # the roadmap's last step: ConvNeXt-T
# trainer.precision -> whether the bare step runs under bf16 autocast, as Lightning's precision plugin runs a step
BARE_PRECISIONS = {"32": False, "32-true": False, "bf16-mixed": True}


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


class BareStep:
    """The bare training step of `cfg`'s network as its run trains it: on the trainer's device, in its precision
    (bf16 autocast under bf16-mixed), memory format and `trainer.compile` setting; forward, the loss, backward and
    the recipe's optimizer on one random batch of the run's shape, in this process. Built (and compiled) once, so
    that it can be timed again between other measurements."""

    def __init__(self, cfg: DictConfig) -> None:
        from roadmap.training.module import compile_options, new_iteration  # here: it imports Lightning

        precision = str(cfg.trainer.precision)
        if precision not in BARE_PRECISIONS:
            raise ConfigError(f"trainer.precision={precision}: the bare step is timed in {sorted(BARE_PRECISIONS)} "
                              "only; time the run under one of those")
        self.amp = BARE_PRECISIONS[precision]
        self.new_iteration = new_iteration  # imported once, not in the timed loop
        self.device = training_device(cfg.trainer.accelerator)
        memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
        self.model = build_model(cfg).to(self.device, memory_format=memory_format).train()
        self.optimizer = build_optimizer(self.model, cfg.recipe, 1e-4)
        options = compile_options(cfg.trainer.compile)
        if options is not None:  # as the run compiles it: in place, after the optimizer has its parameters
            self.model.compile(**options)
        generator = torch.Generator().manual_seed(0)
        size, self.batch = cfg.data.input_size, cfg.data.batch_size
        x = torch.randn(self.batch, cfg.data.in_chans, size, size, generator=generator)
        y = torch.randint(cfg.data.num_classes, (self.batch,), generator=generator)
        self.x, self.y = x.to(self.device, memory_format=memory_format), y.to(self.device)
        for _ in range(3):  # the optimizer's state, cuDNN's choices, a compile
            self.step()

    def step(self) -> None:
        self.new_iteration()
        train_step(self.model, self.optimizer, self.x, self.y, self.amp)

    def __call__(self, rounds: int, steps: int) -> list[float]:
        """Training img/s over `steps` steps, once per round, after one untimed step (a compile dropped since, by
        another measurement's `torch._dynamo.reset()`, is made again there, not in a timed round)."""
        self.step()
        speeds = []
        for _ in range(rounds):
            _sync(self.device)
            start = time.perf_counter()
            for _ in range(steps):
                self.step()
            _sync(self.device)
            speeds.append(steps * self.batch / (time.perf_counter() - start))
        return speeds


def step_throughput(cfg: DictConfig, rounds: int, steps: int) -> list[float]:
    """Training img/s of `cfg`'s bare step (`BareStep`), one value per round."""
    return BareStep(cfg)(rounds, steps)


def job_record(overrides: Sequence[str], batches: int, out_dir: Path, profiler: Profiler | None = None) -> dict:
    """The record of the run `python run.py <overrides>` would make, cut to its first `batches` training batches
    (one epoch; validation on 1,000 images, no wandb), under `profiler` where one is given."""
    from roadmap.training.job import train  # here: only this mode needs Lightning

    cfg = compose([*overrides, "scale.epochs=1", f"+trainer.limit_train_batches={batches}", "scale.val_subset=1000",
                   "logger.wandb.enabled=false"])
    return train(cfg, out_dir, profiler=profiler)


def job_throughput(overrides: Sequence[str], batches: int, out_dir: Path) -> float:
    """Training img/s of that cut run, measured by the run itself (its clock leaves out its first batches)."""
    return job_record(overrides, batches, out_dir)["train_images_per_second"]


def data_throughput(overrides: Sequence[str], pipeline: str | None, batches: int) -> float:
    """Training img/s of one data pipeline alone (None: the run's own): the batches a run of `overrides` trains on
    (its recipe fitted to its budget, as train.py fits it), on its trainer's device, each waited for there (a GPU is
    synchronised)."""
    import lightning  # here: only this mode needs Lightning

    from roadmap.training.job import fit_to_run

    cfg = compose([*overrides, *([f"data.pipeline={pipeline}"] if pipeline else [])])
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
