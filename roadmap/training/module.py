"""The Lightning module: one network trained under one recipe, validated on top-1 and top-5."""

import random
import sys
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.profiler import record_function
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from roadmap.data import PADDING_LABEL
from roadmap.errors import need
from roadmap.training.recipe import build_loss, build_mixup, build_optimizer, build_scheduler


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN or infinite loss."""


# Reading a loss on the host waits for the GPU, which then idles while the next step is queued: the losses are
# checked every this many batches, at the end of each epoch and before any checkpoint is saved, not every step, and
# logged then (every trainer.log_every_n_steps-th step's), so that a training step never waits for the device.
CHECK_LOSS_EVERY = 50
# trainer.compile: false (eager), true (torch.compile's default mode), one of torch.compile's modes by name, or
# cudagraphs. reduce-overhead replays each compiled forward and backward as a CUDA graph (static shapes: training
# drops incomplete batches), which saves the kernel launches that bound a small network's step on a GPU;
# cudagraphs captures the graphs without Inductor's code generation (torch.compile's "cudagraphs" backend): seconds
# to capture where a compile takes a minute, for a run too short to repay one.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_options(setting: bool | str) -> dict[str, str] | None:
    """torch.compile's keyword arguments for `trainer.compile`, or None for an eager run."""
    need(isinstance(setting, bool) or setting in (*COMPILE_MODES, "cudagraphs"), "trainer.compile", setting,
         f"true, false, cudagraphs or one of torch.compile's modes {list(COMPILE_MODES)}")
    if setting is False:
        return None
    if setting == "cudagraphs":
        return {"backend": "cudagraphs"}
    return {} if setting is True else {"mode": setting}


def new_iteration() -> None:
    """Tell compiled CUDA graphs (trainer.compile=reduce-overhead) that a new step begins, so that they may reuse
    the last step's buffers; where none were made their module is not even loaded (it takes seconds to import)."""
    if "torch._inductor.cudagraph_trees" in sys.modules:
        torch.compiler.cudagraph_mark_step_begin()


class RoadmapModule(L.LightningModule):
    """Trains `model` with the recipe's optimizer, schedule, Mixup/CutMix and loss (its EMA is a callback,
    roadmap/training/ema.py).

    It keeps the per-epoch training loss (`loss_curve`) and the random number generators' states in
    its checkpoints, so that a resumed run continues exactly where an uninterrupted one would be.
    """

    def __init__(self, model: nn.Module, recipe: Mapping[str, Any], *, num_classes: int, lr: float,
                 batch_size: int, steps_per_epoch: int, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last  # NHWC batches: faster convolutions on GPUs and on CPUs
        self.recipe = recipe  # fitted to the run's length (roadmap/training/budget.py)
        self.lr, self.steps_per_epoch = lr, steps_per_epoch
        self.mixup = build_mixup(recipe["augment"], num_classes, batch_size)
        self.train_loss = build_loss(recipe["augment"])
        self.top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        # Metric objects, not logged floats: under DDP they add up every process's share of the validation set.
        self.val_loss = MeanMetric()
        self.val_images = SumMetric()
        self.loss_curve: list[float] = []  # mean training loss of each finished epoch
        self._epoch_losses: list[torch.Tensor] = []
        self._loss_steps: list[int] = []  # the optimizer step each of `_epoch_losses` was computed at, for the log
        self._checked = 0  # how many of `_epoch_losses` are known to be finite (and logged)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The step queues its work and returns: nothing in it reads a value back from the device."""
        new_iteration()
        x, y = batch
        x = self._images(x)
        if self.mixup is not None:
            with record_function("mixup"):  # a name in a profile (roadmap/tools/gap.py)
                x, y = self.mixup(x, y)
        loss = self.train_loss(self.model(x), y)
        self._epoch_losses.append(loss.detach())
        self._loss_steps.append(self.global_step)
        if len(self._epoch_losses) - self._checked >= CHECK_LOSS_EVERY:
            self.check_losses()
        return loss

    def check_losses(self) -> None:
        """Stop on the first NaN or infinite loss of the epoch not checked yet, naming its batch; log the others."""
        if self._checked == len(self._epoch_losses):
            return
        with record_function("loss check"):  # the one wait for the device in 50 steps, named in a profile
            unchecked = torch.stack([loss.to(self.device) for loss in self._epoch_losses[self._checked:]])
            bad = (~torch.isfinite(unchecked)).nonzero()
        if len(bad):
            first = int(bad[0])
            raise NonFiniteLossError(
                f"the training loss is {unchecked[first].item()} at epoch {self.current_epoch}, batch "
                f"{self._checked + first}. Training stopped; the last good checkpoint (checkpoints/last.ckpt in the "
                "run folder) is kept. Lower recipe.lr.base, set recipe.grad_clip, or check the data for broken "
                "inputs.")
        self._log_losses(unchecked.tolist(), self._loss_steps[self._checked:])  # the check has waited already
        self._checked = len(self._epoch_losses)

    def _log_losses(self, losses: list[float], steps: list[int]) -> None:
        """`train/loss` at every trainer.log_every_n_steps-th optimizer step (the step's last batch), to the
        loggers, as Lightning's own per-step logging would have sent it."""
        every = self.trainer.log_every_n_steps
        logged = {step: loss for step, loss in zip(steps, losses, strict=True) if (step + 1) % every == 0}
        for logger in self.loggers:
            for step, loss in logged.items():
                logger.log_metrics({"train/loss": loss}, step=step)

    def on_train_epoch_end(self) -> None:
        self.check_losses()
        # (losses restored from a checkpoint saved within the epoch are on the CPU)
        epoch_loss = torch.stack([loss.to(self.device) for loss in self._epoch_losses]).mean().item()
        self._epoch_losses.clear()
        self._loss_steps.clear()
        self._checked = 0
        self.loss_curve.append(epoch_loss)
        self.log("train/epoch_loss", epoch_loss, sync_dist=True)  # the mean over processes under DDP

    def evaluation_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A validation batch as a network takes it, without the padding DDP adds to shorter shares (which counts
        for nothing); None when nothing is left. One process has no padding: its batches are taken whole, without
        the mask's wait for the device."""
        x, y = batch
        if self.trainer.world_size == 1:
            return self._images(x), y
        keep = y != PADDING_LABEL
        return (self._images(x[keep]), y[keep]) if keep.any() else None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        new_iteration()
        evaluated = self.evaluation_batch(batch)
        if evaluated is None:
            return
        x, y = evaluated
        logits = self.model(x)
        self.top1(logits, y)
        self.top5(logits, y)
        self.val_loss(nn.functional.cross_entropy(logits, y), weight=len(y))
        self.val_images(len(y))

    def on_validation_epoch_end(self) -> None:
        """Each metric computed once over the whole validation set (all processes' shares), then reset."""
        metrics = {"top1": self.top1, "top5": self.top5, "loss": self.val_loss, "images": self.val_images}
        for name, metric in metrics.items():
            # sync_dist: the value is already global; averaging equal values keeps it, and tells Lightning so
            self.log(f"val/{name}", metric.compute(), prog_bar=name == "top1", sync_dist=True)
            metric.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.recipe, self.lr)
        scheduler, interval = build_scheduler(optimizer, self.recipe, self.steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """timm schedulers count optimizer steps (`step_update`) or epochs (`step`)."""
        if self.trainer.lr_scheduler_configs[0].interval == "step":
            scheduler.step_update(num_updates=self.global_step)
        else:
            scheduler.step(epoch=self.current_epoch + 1)

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: Any = None,
                                    gradient_clip_algorithm: Any = None) -> None:
        if self.recipe["grad_clip"]:
            self.clip_gradients(optimizer, gradient_clip_val=self.recipe["grad_clip"], gradient_clip_algorithm="norm")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_losses()  # weights a non-finite loss has touched are never saved
        # Plain tensors and tuples only, so that torch.load(weights_only=True) can read the checkpoint.
        name, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["loss_curve"] = list(self.loss_curve)
        checkpoint["epoch_losses"] = [float(loss) for loss in self._epoch_losses]  # a checkpoint within an epoch
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                    "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.loss_curve = list(checkpoint["loss_curve"])
        self._epoch_losses = [torch.tensor(loss) for loss in checkpoint.get("epoch_losses", [])]
        self._loss_steps = [-1] * len(self._epoch_losses)  # checked and logged before the checkpoint was saved
        self._checked = len(self._epoch_losses)
        states = checkpoint["rng_states"]
        torch.set_rng_state(states["torch"])
        random.setstate(states["python"])
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
