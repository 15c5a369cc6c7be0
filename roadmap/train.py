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
import wandb
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
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


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux: VmRSS, VmHWM, ...) in MiB; None where there is none."""
    with contextlib.suppress(OSError):
        for line in (PROC_SELF / "status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return None


def peak_memory_mb() -> tuple[float, str]:
    """GPU: the most memory torch allocated; CPU: the process's peak resident set since the reset."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak, "process_peak_rss"
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


# Trainer options that are ours, not lightning.Trainer arguments (conf/trainer/*.yaml).
OWN_TRAINER_KEYS = ("channels_last", "compile")


class Recorder(Callback):
    """Times the training batches and, when training ends, writes the run's record (rank 0 only).

    It runs inside the training processes, so that a run under DDP (spawned or launched by srun) writes
    exactly one record, with the metrics over the whole validation set.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path, started: float, run: dict[str, Any], warmup: int = 5) -> None:
        self.cfg, self.out_dir, self.started, self.run = cfg, out_dir, started, run
        self.warmup = warmup
        self.batches: list[tuple[int, float]] = []  # (images, seconds) per training batch in this process
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
        """This process's training images per second, leaving out the first `warmup` batches when there are more."""
        timed = self.batches[self.warmup:] if len(self.batches) > self.warmup else self.batches
        seconds = sum(s for _, s in timed)
        return sum(n for n, _ in timed) / seconds if seconds else None

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        cfg = self.cfg
        metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
        memory, memory_kind = peak_memory_mb()
        per_device = self.images_per_second
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
            "val_images": round(metrics["val/images"]),
            "train_loss": module.loss_curve,
            "epochs": cfg.scale.epochs,
            "input_size": cfg.data.input_size,
            # All processes together (each runs the same batches); per device in the next key.
            "train_images_per_second": per_device and per_device * trainer.world_size,
            "train_images_per_second_per_device": per_device,
            "peak_memory_mb": memory,
            "peak_memory_kind": memory_kind,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
            "wall_seconds": time.time() - self.started,
            **self.run,
            "git_commit": git_commit(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        atomic_write_text(self.out_dir / "result.json", json.dumps(record, indent=2) + "\n")


def make_trainer(cfg: DictConfig, out_dir: Path, loggers: list[Logger], callbacks: Sequence[Callback]) -> L.Trainer:
    """The Lightning Trainer of `cfg.trainer`, refusing the one DDP set-up that breaks under Hydra."""
    args = {k: v for k, v in cfg.trainer.items() if k not in OWN_TRAINER_KEYS}
    if args["accelerator"] in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.accelerator={args['accelerator']}, but torch sees no GPU here "
                         "(torch.cuda.is_available() is False): run on a GPU machine, or use trainer=cpu.")
    trainer = L.Trainer(
        **args, max_epochs=cfg.scale.epochs, logger=loggers,
        # Every epoch: the newest checkpoint replaces the previous one, and checkpoints/last.ckpt links to it.
        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last="link", save_top_k=1, every_n_epochs=1),
                   TQDMProgressBar(), *callbacks],
        default_root_dir=out_dir, num_sanity_val_steps=0, enable_model_summary=False,
        use_distributed_sampler=False,  # the data module shards itself, without counting padding twice
    )
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise ValueError(
            f"trainer.strategy={cfg.trainer.get('strategy')} with {trainer.num_devices} devices would start each "
            "extra process by re-running this command, which under Hydra makes new output folders and, in a "
            "multirun, re-runs the whole sweep. Use trainer=ddp (spawned processes) on one machine, or trainer=slurm"
            " (one process per GPU from srun) on a cluster.")
    return trainer


def train(cfg: DictConfig, out_dir: Path, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the config's model and write ``out_dir/result.json``; returns the record."""
    started = time.time()
    reset_peak_memory()
    L.seed_everything(cfg.seed, workers=True)
    # Everything that can be checked without data is checked first.
    check_combination(list(cfg.deltas))
    check_recipe(cfg.recipe)
    if cfg.resume is not None and not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume={cfg.resume} is not a checkpoint file; pass <run dir>/checkpoints/last.ckpt.")
    if cfg.data.get("num_classes") is None:
        cfg.data.num_classes = count_classes(cfg.data.root)
    model = build_model(cfg)
    build_mixup(cfg.recipe.augment, cfg.data.num_classes, cfg.data.batch_size)  # an odd batch fails here, not later
    # Counted now, on the plain network: not once it is compiled, channels-last or wrapped for DDP.
    at_input = complexity(model, cfg.data.input_size, cfg.data.in_chans)
    run: dict[str, Any] = {  # for the record; how the run was spread and scaled follows below
        "params": at_input.params, "gflops": at_input.gflops,
        "gflops_224": complexity(model, 224, cfg.data.in_chans).gflops}
    loggers = make_loggers(cfg, out_dir)
    trainer = make_trainer(cfg, out_dir, loggers, [Recorder(cfg, out_dir, started, run), *callbacks])
    if cfg.trainer.accelerator == "cpu" and torch.cuda.is_available():
        log.warning("training on the CPU although a GPU is present: pass trainer=gpu (or trainer=ddp) to use it")
    # The global batch drives the lr: per-device batch x devices x nodes x gradient accumulation.
    devices, nodes = trainer.num_devices, trainer.num_nodes
    global_batch = cfg.scale.global_batch_size or cfg.data.batch_size * devices * nodes
    trainer.accumulate_grad_batches = accumulation(global_batch, cfg.data.batch_size, devices, nodes)
    lr = scaled_lr(cfg.recipe, global_batch, cfg.scale.lr_scaling)
    run.update(global_batch_size=global_batch, batch_size=cfg.data.batch_size, devices=devices, num_nodes=nodes,
               accumulate_grad_batches=trainer.accumulate_grad_batches, lr=lr)
    for logger in loggers:
        logger.log_hyperparams(run)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    steps_per_epoch = max(1, datamodule.train_batches(devices * nodes) // trainer.accumulate_grad_batches)
    module = RoadmapModule(model, cfg.recipe, num_classes=cfg.data.num_classes,
                           lr=lr, batch_size=cfg.data.batch_size, epochs=cfg.scale.epochs,
                           steps_per_epoch=steps_per_epoch, channels_last=cfg.trainer.channels_last)
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:
        model.compile()  # in place: the state dict, and so the checkpoints, keep their keys
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.resume)
    finally:
        if wandb.run is not None:
            wandb.run.finish()  # one wandb run per job, even when the job fails
    if trainer.interrupted or not (out_dir / "result.json").is_file():
        raise RuntimeError(f"training stopped before its end; continue it with resume={out_dir}/checkpoints/last.ckpt")
    record = json.loads((out_dir / "result.json").read_text())
    log.info("%s seed %d: top-1 %.2f%%, top-5 %.2f%%, %s", cfg.name, cfg.seed, record["top1"], record["top5"],
             out_dir / "result.json")
    return record
