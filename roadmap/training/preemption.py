"""Time limits and preemption under submitit (trainer=slurm): checkpoint at a step's end, then requeue as submitit does.

Before a job's time limit, or before preempting it, SLURM sends the job a signal (submitit asks for USR2,
`signal_delay_s` ahead; `SUBMITIT_PREEMPT_SIGNAL` names another). submitit's own handler resubmits the job and
requeues it at once, from whatever line training is on, losing everything since the last epoch's checkpoint. This
callback takes the signal in its place and holds it until the optimizer step under way is done (with gradient
accumulation, until the batch that completes the step). Then every process saves the same checkpoint,
`checkpoints/interrupted.ckpt`, and submitit's handler requeues the job as it would have (Hydra's submitit launcher
resubmits the same job; `hydra.launcher.max_num_timeout` bounds how often a job may time out). The requeued job runs
in the same folder and continues from that checkpoint (train.skip_or_continue), mid-epoch included
(data.ImageData skips the batches already trained on), to the record an uninterrupted run writes.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted.ckpt"  # in the run's checkpoints/ folder


def submitit_signal() -> signal.Signals | None:
    """The signal submitit's job handles as 'time limit or preemption', inside a submitit job; else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class Requeue(Callback):
    """Defers submitit's requeue on `signum` to the end of the current optimizer step, after a checkpoint."""

    def __init__(self, signum: signal.Signals, checkpoint_dir: Path) -> None:
        self.signum, self.path = signum, Path(checkpoint_dir) / INTERRUPTED
        self.requeue: Any = None  # submitit's handler, called once the checkpoint is saved
        self.received = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Not at fit start: Lightning keeps the handlers it finds after that hook, and restores them at its end.
        self.requeue = signal.getsignal(self.signum)
        signal.signal(self.signum, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        log.warning("received %s: checkpointing at the end of this step, then requeueing", signal.Signals(signum).name)
        self.received = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Only where an optimizer step has just been taken: checkpoints hold no half-accumulated gradients.
        done = batch_idx + 1
        if done % trainer.accumulate_grad_batches and done != trainer.num_training_batches:
            return
        received = torch.tensor(float(self.received), device=pl_module.device)
        if trainer.world_size > 1:  # the processes agree on the step, or the collective checkpoint would hang
            received = trainer.strategy.reduce(received, reduce_op="max")
        if not received.item():
            return
        trainer.save_checkpoint(self.path)
        trainer.strategy.barrier()
        log.warning("saved %s; requeueing", self.path)
        self._release()
        if callable(self.requeue):
            self.requeue(self.signum, None)  # submitit: on rank 0, resubmit and requeue, then exit
        raise SystemExit(f"stopped by {self.signum.name} at step {trainer.global_step}; the job is requeued")

    def _release(self) -> None:
        """Gives the signal back to its handler from before training."""
        if self.requeue is not None:
            signal.signal(self.signum, self.requeue)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._release()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._release()
