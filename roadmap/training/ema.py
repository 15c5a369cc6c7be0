"""The exponential moving average of the network's weights (timm's ModelEmaV3), kept by a Lightning callback.

Outside the LightningModule, as Lightning's own WeightAveraging keeps its average: DDP wraps the module, so it
neither reduces nor broadcasts the EMA, whose weights take no gradients, and a spawned process builds its own EMA
rather than receiving one. Every process updates the same EMA from the same weights, once per optimizer step (when
`trainer.global_step` moves), as timm's train.py and the authors' engine do whatever the gradient accumulation. The
callback evaluates its weights beside the module's (`val/ema_top1`, over every process's share), and its weights
and update count are its state, which Lightning saves in each checkpoint and restores on resume.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from timm.utils import ModelEmaV3
from torchmetrics.classification import MulticlassAccuracy


class EMA(Callback):
    """timm's ModelEmaV3 of `pl_module.model` at `decay`, updated after each optimizer step."""

    def __init__(self, decay: float, num_classes: int) -> None:
        self.decay, self.num_classes = decay, num_classes
        self.ema: ModelEmaV3 | None = None
        self.updates = 0  # optimizer steps the EMA has followed
        self.top1: MulticlassAccuracy | None = None

    @property
    def state_key(self) -> str:
        return "EMA"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Made here, in each process and before a checkpoint's state is restored into it."""
        if self.ema is None:
            self.ema = ModelEmaV3(pl_module.model, decay=self.decay)
            self.ema.requires_grad_(False)
            self.top1 = MulticlassAccuracy(self.num_classes, top_k=1, average="micro")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.ema.to(pl_module.device)  # the strategy has placed the module by now
        self.top1.to(pl_module.device)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_fit_start(trainer, pl_module)  # also where only validate runs: a finished job's record (train.fit)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step > self.updates:  # an optimizer step has just been taken
            self.ema.update(pl_module.model, step=trainer.global_step)
            self.updates = trainer.global_step

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        evaluated = pl_module.evaluation_batch(batch)
        if evaluated is not None:
            x, y = evaluated
            self.top1(self.ema.module(x), y)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("val/ema_top1", self.top1.compute(), sync_dist=True)  # computed over every process's share
        self.top1.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.ema.module.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = state_dict["updates"]
        self.ema.module.load_state_dict(state_dict["weights"])
