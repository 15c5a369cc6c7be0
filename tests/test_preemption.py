"""Time limits and preemption: a job told to stop checkpoints at a step's end and continues to the same record."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from lightning.pytorch.callbacks import Callback

from roadmap.config.composition import CONF_DIR, PRIMARY, compose
from roadmap.training.job import skip_or_continue, train
from roadmap.training.preemption import INTERRUPTED

# 2 epochs of 8 batches; at a global batch of 16 the optimizer steps every second batch.
TINY = ("data=synthetic", "data.train_size=64", "data.val_size=24", "scale.input_size=32", "scale.batch_size=8",
        "scale.epochs=2", "logger.wandb.enabled=false", "+step=separate_downsampling")
ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("train_loss", "top1", "top5", "ema_top1", "optimizer_steps")


class SignalAt(Callback):
    """Sends this process submitit's time-limit signal as batch `batch` of epoch `epoch` starts."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)


@pytest.mark.parametrize(("global_batch", "at", "saved_step"), [
    (8, (1, 3), 8 + 4),  # within the second epoch: saved after the signalled batch
    (16, (0, 2), 2),  # batch 2 begins an accumulation: saved after batch 3, which completes the optimizer step
])
def test_a_signalled_job_checkpoints_at_a_step_end_and_continues_to_the_uninterrupted_record(
        global_batch, at, saved_step, tmp_path, monkeypatch):
    overrides = (*TINY, f"scale.global_batch_size={global_batch}")
    whole = train(compose(list(overrides)), tmp_path / "whole")

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")  # as inside a submitit job, whose signal is USR2
    cut = tmp_path / "cut"
    with pytest.raises(SystemExit, match="stopped by SIGUSR2"):
        train(compose(list(overrides)), cut, callbacks=[SignalAt(*at)])
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # the callback gave the signal back
    assert not (cut / "result.json").exists()
    saved = torch.load(cut / "checkpoints" / INTERRUPTED, weights_only=False)
    assert saved["global_step"] == saved_step
    assert saved["callbacks"]["EMA"]["updates"] == saved_step  # the EMA has followed the saved step

    cfg = compose(list(overrides))  # the requeued job: same folder, same configuration
    assert skip_or_continue(cfg, cut) is False and cfg.resume == str(cut / "checkpoints" / INTERRUPTED)
    resumed = train(cfg, cut)
    for key in COMPARED:
        assert resumed[key] == whole[key], key


def _task_process(folder: Path) -> int | None:
    """The pid of the submitit task running under `folder`, if it has started (Linux: read from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if b"submitit.core._submit" in cmdline and any(str(folder).encode() in part for part in cmdline):
            return int(proc.name)
    return None


def test_a_submitit_job_signalled_mid_run_requeues_itself_and_ends_with_the_uninterrupted_record(tmp_path):
    overrides = [*TINY, "scale.global_batch_size=8", "scale.epochs=4"]
    whole = train(compose(overrides), tmp_path / "whole")
    sweep = tmp_path / "sweep"
    job = subprocess.Popen(
        [sys.executable, "run.py", "-m", *overrides, "seed=0", "hydra/launcher=submitit_local",
         f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Signal the task once its first epoch's checkpoint is written, somewhere within the second epoch.
        deadline = time.monotonic() + 120
        while not (sweep / "job" / "checkpoints" / "last.ckpt").exists():
            assert job.poll() is None and time.monotonic() < deadline, "the job ended or stalled before epoch 1"
            time.sleep(0.02)
        os.kill(_task_process(sweep / ".submitit"), signal.SIGUSR2)
        output, _ = job.communicate(timeout=180)
    finally:
        job.kill()
    assert job.returncode == 0, output
    assert (sweep / "job" / "checkpoints" / INTERRUPTED).exists()  # the first attempt stopped within the run
    logs = "".join(path.read_text() for path in (sweep / ".submitit").rglob("*_log.*"))
    assert "Requeued job" in logs and "continuing from" in logs
    resumed = json.loads((sweep / "job" / "result.json").read_text())
    for key in COMPARED:
        assert resumed[key] == whole[key], key


def test_slurm_jobs_requeue_on_their_time_limit_from_where_they_stopped():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(PRIMARY, ["trainer=slurm", "trainer.num_nodes=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and (launcher.nodes, launcher.tasks_per_node) == (2, 8)
    # the signal leaves time to save; a 2-day limit needs several requeues for 300 ImageNet epochs
    assert launcher.max_num_timeout >= 10 and launcher.signal_delay_s >= 120
