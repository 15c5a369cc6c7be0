"""Train one config and write its record: config -> model, data, module -> Lightning fit -> result.json."""

import contextlib
import json
import logging
import platform
import resource
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from roadmap.ablation import check_combination
from roadmap.complexity import complexity
from roadmap.config import build_model
from roadmap.data import count_classes
from roadmap.module import RoadmapModule
from roadmap.recipe import accumulation, build_mixup, check_recipe, scaled_lr
from roadmap.results import atomic_write_text

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


class Throughput(Callback):
    """Training images per second, leaving out the first `warmup` batches when there are more."""

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.batches: list[tuple[int, float]] = []  # (images, seconds) per training batch
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, out: Any, batch: Any,
                           idx: int) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.batches.append((len(batch[0]), time.perf_counter() - self._start))

    @property
    def images_per_second(self) -> float | None:
        timed = self.batches[self.warmup:] if len(self.batches) > self.warmup else self.batches
        seconds = sum(s for _, s in timed)
        return sum(n for n, _ in timed) / seconds if seconds else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


PROC_SELF = Path("/proc/self")


def reset_peak_memory() -> None:
    """Start a fresh peak for this job: jobs of a multirun share one process."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        (PROC_SELF / "clear_refs").write_text("5")  # Linux: resets the peak resident set (VmHWM)


def peak_memory_mb() -> tuple[float, str]:
    """GPU: the most memory torch allocated; CPU: the process's peak resident set since the reset."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    with contextlib.suppress(OSError):
        for line in (PROC_SELF / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "process_peak_rss"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def make_loggers(cfg: DictConfig, out_dir: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(CSVLogger(out_dir, name="", version="csv"))
    if cfg.logger.wandb.enabled:
        loggers.append(WandbLogger(
            project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity, mode=cfg.logger.wandb.mode,
            group=cfg.name, name=f"{cfg.name}-seed{cfg.seed}", job_type=cfg.regime.name, save_dir=str(out_dir),
            config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous"))
    return loggers


def train(cfg: DictConfig, out_dir: Path, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the config's model and write ``out_dir/result.json``; returns the record."""
    started = time.time()
    reset_peak_memory()
    L.seed_everything(cfg.seed, workers=True)
    # Everything that can be checked without data is checked first.
    check_combination(list(cfg.deltas))
    check_recipe(cfg.recipe)
    lr = scaled_lr(cfg.recipe, cfg.scale.global_batch_size, cfg.scale.lr_scaling)
    if cfg.resume is not None and not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume={cfg.resume} is not a checkpoint file; pass <run dir>/checkpoints/last.ckpt.")
    if cfg.data.get("num_classes") is None:
        cfg.data.num_classes = count_classes(cfg.data.root)
    model = build_model(cfg)
    build_mixup(cfg.recipe.augment, cfg.data.num_classes, cfg.data.batch_size)  # an odd batch fails here, not later
    accumulate = accumulation(cfg.scale.global_batch_size, cfg.data.batch_size, cfg.trainer.devices,
                              cfg.trainer.num_nodes)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    steps_per_epoch = max(1, len(datamodule.train_dataloader()) // accumulate)
    module = RoadmapModule(model, cfg.recipe, num_classes=cfg.data.num_classes,
                           lr=lr, batch_size=cfg.data.batch_size,
                           epochs=cfg.scale.epochs, steps_per_epoch=steps_per_epoch)
    throughput = Throughput()
    loggers = make_loggers(cfg, out_dir)
    trainer = L.Trainer(
        **cfg.trainer, max_epochs=cfg.scale.epochs, accumulate_grad_batches=accumulate, logger=loggers,
        # Every epoch: the newest checkpoint replaces the previous one, and checkpoints/last.ckpt links to it.
        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last="link", save_top_k=1, every_n_epochs=1),
                   TQDMProgressBar(), throughput, *callbacks],
        default_root_dir=out_dir, num_sanity_val_steps=0, enable_model_summary=False,
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume)
    finally:
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.finish()  # one wandb run per job, even when the job fails
    metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
    at_input = complexity(model, cfg.data.input_size, cfg.data.in_chans)
    at_224 = complexity(model, 224, cfg.data.in_chans)
    memory, memory_kind = peak_memory_mb()
    record = {
        "status": "completed",
        "name": cfg.name,
        "step": cfg.step,
        "deltas": list(cfg.deltas),
        "seed": cfg.seed,
        "regime": cfg.regime.name,
        "scale": cfg.scale.name,
        "data": cfg.data._target_.rsplit(".", 1)[-1],
        "top1": metrics["val/top1"] * 100,
        "top5": metrics["val/top5"] * 100,
        "ema_top1": metrics["val/ema_top1"] * 100 if "val/ema_top1" in metrics else None,
        "train_loss": module.loss_curve,
        "epochs": cfg.scale.epochs,
        "params": at_input.params,
        "gflops": at_input.gflops,
        "gflops_224": at_224.gflops,
        "input_size": cfg.data.input_size,
        "train_images_per_second": throughput.images_per_second,
        "peak_memory_mb": memory,
        "peak_memory_kind": memory_kind,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "wall_seconds": time.time() - started,
        "global_batch_size": cfg.scale.global_batch_size,
        "lr": lr,
        "git_commit": git_commit(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_text(out_dir / "result.json", json.dumps(record, indent=2) + "\n")
    log.info("%s seed %d: top-1 %.2f%%, top-5 %.2f%%, %s", cfg.name, cfg.seed, record["top1"], record["top5"],
             out_dir / "result.json")
    return record
