"""Train one config and write its record: config -> model, data, module -> Lightning fit -> result.json."""

import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.profilers import Profiler
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torch import nn

from roadmap.config.composition import build_model
from roadmap.config.labels import labels, wandb_group
from roadmap.data import count_classes
from roadmap.errors import ConfigError
from roadmap.model.flops import complexity
from roadmap.results.records import atomic_write_text
from roadmap.training.budget import Budget, fit_recipe
from roadmap.training.checkpoints import (
    AtomicCheckpointIO,
    flaw,
    newest_sound,
    remove_unfinished_writes,
    training_finished,
    unlink_links,
    unsound,
)
from roadmap.training.ema import EMA
from roadmap.training.module import RoadmapModule, compile_options
from roadmap.training.preemption import Requeue, submitit_signal
from roadmap.training.recipe import accumulation, ema_decay, scaled_lr
from roadmap.training.system import device_name, git_commit, peak_memory_mb, reset_peak_memory, training_device
from roadmap.training.validation import check_config

log = logging.getLogger(__name__)


def utc_iso(seconds: float) -> str:
    """A time.time() as UTC in ISO 8601, to the second: 2026-12-05T01:57:10+00:00."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def composed_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as composed, resolved, without `resume` (which says how it ran, not what it is) and `study`
    (which says where it belongs: the record keeps it beside the config, and a run is the same in any study)."""
    composed = OmegaConf.to_container(cfg, resolve=True)
    composed.pop("resume", None)
    composed.pop("study", None)
    return composed


def same_config(recorded: Any, composed: Any, key: str = "") -> bool:
    """Whether a record's config is this one. A key on one side only counts as equal when its value is null: a knob
    added to the configs after the record was written, at the default that leaves runs as they were. A `_target_`
    counts as equal when it names the same class or function: its module path moves with the code, the run does not
    (records written before roadmap/ had subpackages name roadmap.network.RoadmapNet)."""
    if isinstance(recorded, dict) and isinstance(composed, dict):
        return all(same_config(recorded.get(k), composed.get(k), k) for k in recorded.keys() | composed.keys())
    if key == "_target_" and isinstance(recorded, str) and isinstance(composed, str):
        return recorded.rpartition(".")[2] == composed.rpartition(".")[2]
    return recorded == composed


class OtherConfigRecord(ConfigError):
    """The job's folder holds the completed record of another config: refused, never overwritten."""


def skip_or_continue(cfg: DictConfig, out_dir: Path) -> bool:
    """For a study run again into the same folders (`make roadmap` after an interruption): True when this job's
    completed record is already in `out_dir`, so the job is skipped; an interrupted job continues from its newest
    sound checkpoint (`cfg.resume` is set; roadmap/training/checkpoints.py), which may be its last, so that only its
    record is left to write. A record of another config in `out_dir` is refused, never overwritten. Run by the folder's
    one writer (roadmap/training/lock.py), which also deletes what a killed write left unfinished."""
    remove_unfinished_writes(out_dir)
    path = out_dir / "result.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("status") == "completed":
            if not same_config(record.get("config"), composed_config(cfg)):
                raise OtherConfigRecord(
                    f"{path} holds the completed record of another config; point this run at another folder "
                    "(hydra.run.dir=..., or hydra.sweep.dir=... in a multirun) or move that one away.")
            log.info("%s seed %s is already completed in %s: skipped", cfg.name, cfg.seed, out_dir)
            return True
    if cfg.resume is not None:  # given on the command line: used as it is, or refused
        reason = flaw(Path(cfg.resume))
        if reason is not None:
            raise ConfigError(f"resume={cfg.resume} cannot be resumed from: {reason}. Pass another checkpoint, or "
                              "resume=null to continue from the run folder's newest sound one.")
        return False
    # The last epoch's checkpoint, or the one saved when the job was told to stop (roadmap/training/preemption.py).
    checkpoint = newest_sound(out_dir / "checkpoints")
    if checkpoint is not None:
        log.info("%s seed %s was interrupted: continuing from %s", cfg.name, cfg.seed, checkpoint)
        cfg.resume = str(checkpoint)
    return False


def make_loggers(cfg: DictConfig, out_dir: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        loggers.append(CSVLogger(out_dir, name="", version="csv"))
    if cfg.logger.wandb.enabled:
        loggers.append(WandbLogger(
            project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity, mode=cfg.logger.wandb.mode,
            group=wandb_group(cfg), name=f"{cfg.name}-seed{cfg.seed}", job_type=cfg.study, save_dir=str(out_dir),
            config={**OmegaConf.to_container(cfg, resolve=True), **labels(cfg)}, reinit="finish_previous"))
    return loggers


# A run's figures and labels in its wandb summary (roadmap/tools/dashboard.py reads them).
SUMMARY = ("top1", "top5", "ema_top1", "params", "gflops", "gflops_224", "train_images_per_second", "peak_memory_mb",
           "wall_seconds", "deltas", "roadmap_index", "stage", "paper_top1", "study_key")

# Trainer options that are ours, not lightning.Trainer arguments (conf/trainer/*.yaml).
OWN_TRAINER_KEYS = ("channels_last", "compile")


class Recorder(Callback):
    """Times the training batches and, when training ends, writes the run's record (rank 0 only).

    It runs inside the training processes, so that a run under DDP (spawned or launched by srun) writes
    exactly one record, with the metrics over the whole validation set. Its clocks are saved in each checkpoint, so
    that a resumed run's throughput counts the batches trained before the interruption too. A job resumed from the
    checkpoint of its last epoch has nothing left to train: it is validated from that checkpoint instead, and the
    record is written when that validation ends.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path, started: float, run: dict[str, Any], warmup: int = 5) -> None:
        self.cfg, self.out_dir, self.started, self.run = cfg, out_dir, started, run
        self.composed = composed_config(cfg)  # before train() fills in or fits anything
        self.warmup = warmup
        self.started_batches = 0  # training batches begun in this process
        # Two clocks, each [seconds, images]: every training batch, and those after the first `warmup` (cuDNN's
        # autotuning, compilation and the loader's start fall in the warm-up). A clock runs from the start of a
        # batch to the end of the epoch's training, so that the GPU is waited for only when a clock starts or
        # stops, not at every step. A batch's time includes loading the next one and logging.
        self.clocks = {"all": [0.0, 0], "steady": [0.0, 0]}
        self._running: dict[str, float] = {}  # clock -> when it started

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int) -> None:
        for name, due in (("all", True), ("steady", self.started_batches >= self.warmup)):
            if due and name not in self._running:
                self._running[name] = self._now()
        for name in self._running:
            self.clocks[name][1] += len(batch[0])
        self.started_batches += 1

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._stop_clocks()  # validation, checkpoints and the epoch's bookkeeping are not training time

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._stop_clocks()

    def _stop_clocks(self) -> None:
        if self._running:
            now = self._now()
            for name, started in self._running.items():
                self.clocks[name][0] += now - started
            self._running.clear()

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        self._stop_clocks()  # a checkpoint within an epoch; the next batch starts them again
        return {"clocks": self.clocks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clocks = state_dict["clocks"]

    @property
    def images_per_second(self) -> float | None:
        """This process's training images per second, leaving out the first `warmup` batches when there are more."""
        seconds, images = self.clocks["steady"] if self.clocks["steady"][0] else self.clocks["all"]
        return images / seconds if seconds else None

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.write(trainer, module)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # a finished job's checkpoint, validated for its record
            self.write(trainer, module)

    def write(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """The record, from the last validation's metrics, written to result.json by the process of rank 0."""
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
            "device": device_name("cuda" if torch.cuda.is_available() else "cpu"),
            "wall_seconds": time.time() - self.started,
            # UTC, ISO 8601: a study's wall time reads off its records (this process's start, for a resumed job).
            "started_at": utc_iso(self.started),
            "finished_at": utc_iso(time.time()),
            # What this process continued from, and the checkpoints found unsound and moved aside (never trusted).
            "resumed_from": cfg.resume and _relative(Path(cfg.resume), self.out_dir),
            "skipped_checkpoints": [_relative(p, self.out_dir) for p in unsound(self.out_dir / "checkpoints")],
            **self.run,
            "git_commit": git_commit(),
            **labels(cfg),
            "config": self.composed,  # as composed; what the budget changed is under recipe_changes
        }
        atomic_write_text(self.out_dir / "result.json", json.dumps(record, indent=2) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):  # the figures a dashboard compares runs by, one value per run
                logger.experiment.summary.update({key: record[key] for key in SUMMARY})


def _relative(path: Path, folder: Path) -> str:
    """`path` as seen from `folder` where it lies within, so that a record moved with its folder still names it."""
    path, folder = path.absolute(), folder.absolute()
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def make_trainer(cfg: DictConfig, out_dir: Path, loggers: list[Logger], callbacks: Sequence[Callback],
                 profiler: Profiler | None = None) -> L.Trainer:
    """The Lightning Trainer of `cfg.trainer`, refusing the one DDP set-up that breaks under Hydra; `profiler`
    times Lightning's hooks (roadmap/tools/gap.py passes torch's)."""
    args = {k: v for k, v in cfg.trainer.items() if k not in OWN_TRAINER_KEYS}
    training_device(args["accelerator"])  # a GPU asked for is there
    trainer = L.Trainer(
        **args, max_epochs=cfg.scale.epochs, logger=loggers,
        # Validation costs a pass over the validation set: every n epochs, or only after the last (null).
        check_val_every_n_epoch=cfg.scale.get("val_every_n_epochs") or cfg.scale.epochs,
        # Every epoch: the newest checkpoint replaces the previous one, and checkpoints/last.ckpt links to it.
        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last="link", save_top_k=1, every_n_epochs=1,
                                   save_on_train_epoch_end=True),  # also in the epochs that skip validation
                   TQDMProgressBar(refresh_rate=10), *callbacks],
        default_root_dir=out_dir, num_sanity_val_steps=0, enable_model_summary=False,
        # a kill during a save never leaves a torn checkpoint (roadmap/training/checkpoints.py)
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # the data module shards itself, without counting padding twice
        profiler=profiler,
    )
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher):
        raise ConfigError(
            f"trainer.strategy={cfg.trainer.get('strategy')} with {trainer.num_devices} devices would start each "
            "extra process by re-running this command, which under Hydra makes new output folders and, in a "
            "multirun, re-runs the whole sweep. Use trainer=ddp (spawned processes) on one machine, or trainer=slurm"
            " (one process per GPU from srun) on a cluster.")
    return trainer


def fit_to_run(cfg: DictConfig, trainer: L.Trainer) -> tuple[L.LightningDataModule, int, Budget, dict[str, Any]]:
    """The data module, ready to train, the global batch, the run's budget and what fitting the recipe to the
    budget changed.

    The global batch drives the lr and the gradient accumulation (per-device batch x devices x nodes x
    accumulation); the budget fits the recipe to the run's optimizer steps (roadmap/training/budget.py), in place, so
    that the data's augmentations, the network (stochastic depth, layer scale), the module and the record all read the
    fitted values."""
    devices, nodes = trainer.num_devices, trainer.num_nodes
    global_batch = cfg.scale.global_batch_size or cfg.data.batch_size * devices * nodes
    trainer.accumulate_grad_batches = accumulation(global_batch, cfg.data.batch_size, devices, nodes)
    datamodule = instantiate(cfg.data)
    steps_per_epoch = max(1, datamodule.train_batches(devices * nodes) // trainer.accumulate_grad_batches)
    budget = Budget.of(cfg.recipe, cfg.scale.epochs, steps_per_epoch)
    fitted, changes = fit_recipe(cfg.recipe, budget, cfg.scale.budget, cfg.scale.eval_resize_ratio)
    cfg.recipe.merge_with(fitted)  # in place: the recipe keeps its schema's types
    datamodule.fit_augment(OmegaConf.to_container(cfg.data.augment, resolve=True))  # data.augment: ${recipe.augment}
    datamodule.setup("fit")
    return datamodule, global_batch, budget, changes


def describe(cfg: DictConfig, model: nn.Module, datamodule: L.LightningDataModule, trainer: L.Trainer,
             global_batch: int, lr: float, budget: Budget, changes: dict[str, Any]) -> dict[str, Any]:
    """What the record and the loggers say of the run beyond its config. The complexity is counted on the plain
    network: not once it is compiled, channels-last or wrapped for DDP."""
    at_input = complexity(model, cfg.data.input_size, cfg.data.in_chans)
    return dict(data_source=datamodule.source, data_pipeline=datamodule.pipeline_on(trainer.strategy.root_device),
                params=at_input.params, gflops=at_input.gflops,
                gflops_224=complexity(model, 224, cfg.data.in_chans).gflops, global_batch_size=global_batch,
                batch_size=cfg.data.batch_size, devices=trainer.num_devices, num_nodes=trainer.num_nodes,
                accumulate_grad_batches=trainer.accumulate_grad_batches, lr=lr, optimizer_steps=budget.steps,
                recipe_changes=changes)


def add_run_callbacks(trainer: L.Trainer, cfg: DictConfig, model: nn.Module, out_dir: Path) -> None:
    """The EMA of the weights, a callback so that DDP leaves it alone (roadmap/training/ema.py); inside a submitit job,
    the checkpoint-and-requeue on its time-limit signal (roadmap/training/preemption.py), after the EMA's update."""
    decay = ema_decay(model, cfg.recipe)
    if decay is not None:
        trainer.callbacks.append(EMA(decay, cfg.data.num_classes))
    signum = submitit_signal()
    if signum is not None:
        trainer.callbacks.append(Requeue(signum, out_dir / "checkpoints"))


def fit(trainer: L.Trainer, module: RoadmapModule, datamodule: L.LightningDataModule, resume: str | None,
        epochs: int, checkpoints: Path) -> None:
    """Lightning's fit, with one wandb run per job even when the job fails. From a checkpoint saved after the last
    epoch (a job killed before its record), the checkpoint is validated instead: the weights, the EMA's and the loss
    curve are those the last epoch's validation saw, so the record's numbers are the uninterrupted run's."""
    try:
        with warnings.catch_warnings():
            # A run resumed within an epoch skips the batches it trained on in the sampler (data.ImageData), which
            # Lightning cannot see, so its warning that the loader cannot resume does not apply.
            warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")
            if resume is not None and training_finished(Path(resume), epochs):
                log.info("%s holds the finished training: validating it for the record", resume)
                trainer.validate(module, datamodule=datamodule, ckpt_path=resume, verbose=False)
            else:
                unlink_links(checkpoints)
                trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    finally:
        # wandb is imported by the WandbLogger only: a run without it trains where wandb is not installed
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.run.finish()


def train(cfg: DictConfig, out_dir: Path, callbacks: Sequence[Callback] = (),
          profiler: Profiler | None = None) -> dict[str, Any]:
    """Train the config's model and write ``out_dir/result.json``; returns the record."""
    # every value that can be checked without data, before any is read (roadmap/training/validation.py)
    check_config(cfg)
    reset_peak_memory()
    run: dict[str, Any] = {}  # for the record, filled in below; the recorder keeps the config as composed
    recorder = Recorder(cfg, out_dir, time.time(), run)
    if cfg.data.get("num_classes") is None:
        cfg.data.num_classes = count_classes(cfg.data.root)
    loggers = make_loggers(cfg, out_dir)
    trainer = make_trainer(cfg, out_dir, loggers, [recorder, *callbacks], profiler)
    datamodule, global_batch, budget, changes = fit_to_run(cfg, trainer)
    L.seed_everything(cfg.seed, workers=True)
    model = build_model(cfg)
    lr = scaled_lr(cfg.recipe, global_batch, cfg.scale.lr_scaling)
    run.update(describe(cfg, model, datamodule, trainer, global_batch, lr, budget, changes))
    for logger in loggers:
        logger.log_hyperparams({**run, "recipe": OmegaConf.to_container(cfg.recipe)})
    module = RoadmapModule(model, cfg.recipe, num_classes=cfg.data.num_classes, lr=lr,
                           batch_size=cfg.data.batch_size, steps_per_epoch=budget.steps_per_epoch,
                           channels_last=cfg.trainer.channels_last)
    add_run_callbacks(trainer, cfg, model, out_dir)
    if cfg.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:  # in place: the state dict, and so the checkpoints, keep their keys
        model.compile(**compile_options(cfg.trainer.compile))
    fit(trainer, module, datamodule, cfg.resume, cfg.scale.epochs, out_dir / "checkpoints")
    path = out_dir / "result.json"
    record = json.loads(path.read_text()) if path.is_file() else {}  # a failed one may be left from an earlier try
    if trainer.interrupted or record.get("status") != "completed":
        raise RuntimeError(f"training stopped before its end; run the same command again to continue it from its "
                           f"newest checkpoint in {out_dir / 'checkpoints'}")
    log.info("%s seed %d: top-1 %.2f%%, top-5 %.2f%%, %s", cfg.name, cfg.seed, record["top1"], record["top5"], path)
    return record
