"""Scaling out on this CPU: DDP with two gloo processes, the submitit launcher, the global batch and its lr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from timm.utils import ModelEmaV3

from roadmap.config.composition import build_model, compose
from roadmap.training.job import train

ROOT = Path(__file__).resolve().parent.parent
VAL_SIZE = 37  # odd: two processes cannot split it evenly, so a padding sampler would count an image twice
TINY = ("data=synthetic", "data.train_size=64", f"data.val_size={VAL_SIZE}", "scale.input_size=32",
        "scale.batch_size=8", "scale.epochs=1", "logger.wandb.enabled=false",
        "scale.lr_scaling=sqrt")  # a rule that reads the global batch
CPU_DDP = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
           "trainer.channels_last=false", "trainer.deterministic=true", "trainer.benchmark=false")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, cwd=cwd,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@torch.no_grad()
def evaluate_checkpoint(checkpoint: Path, overrides: tuple[str, ...], ema: bool = False) -> tuple[float, int]:
    """Top-1 (%) of a checkpoint's weights (or its EMA's) over the whole validation set, in this one process."""
    cfg = compose(overrides)
    model = build_model(cfg).eval()
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if ema:
        model.load_state_dict(saved["callbacks"]["EMA"]["weights"])
    else:
        state = saved["state_dict"]
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    datamodule = instantiate(cfg.data)
    datamodule.setup("validate")
    correct = seen = 0
    for x, y in datamodule.val_dataloader():
        correct += (model(x).argmax(1) == y).sum().item()
        seen += len(y)
    return 100 * correct / seen, seen


def test_ddp_on_two_cpu_processes_writes_one_record_and_keeps_one_ema(tmp_path):
    """ConvNeXt-T under DDP: one job, one record, metrics over the whole validation set, the lr of the global batch,
    and the recipe's EMA kept out of the reduced module: the record's EMA top-1 is the saved EMA's."""
    run_cli(*TINY, *CPU_DDP, "+step=separate_downsampling", "scale.epochs=2", "seed=3", f"hydra.sweep.dir={tmp_path}",
            "-m", cwd=tmp_path)
    records = list(tmp_path.rglob("result.json"))
    assert len(records) == 1, records  # one job, one record: no re-launched script, no extra output folder
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["separate_downsampling-seed3"]
    record = json.loads(records[0].read_text())
    assert record["status"] == "completed" and record["devices"] == 2
    assert record["val_images"] == VAL_SIZE
    assert record["global_batch_size"] == 16 and record["accumulate_grad_batches"] == 1
    assert record["lr"] == pytest.approx(4e-3 * (16 / 4096) ** 0.5)  # the sqrt rule on the global batch
    checkpoint = records[0].parent / "checkpoints/last.ckpt"
    assert torch.load(checkpoint, weights_only=True)["callbacks"]["EMA"]["updates"] == 8  # 2 epochs x 64 / 16
    overrides = (*TINY, "+step=separate_downsampling", "seed=3")  # its data and network, in one process
    for key, ema in (("top1", False), ("ema_top1", True)):
        top1, seen = evaluate_checkpoint(checkpoint, overrides, ema=ema)
        assert seen == VAL_SIZE
        assert record[key] == pytest.approx(top1, abs=1e-4), key


def test_the_ema_follows_optimizer_steps_not_batches(tmp_path, monkeypatch):
    calls = []
    original = ModelEmaV3.update
    monkeypatch.setattr(ModelEmaV3, "update", lambda self, model, step=None: calls.append(step) or original(
        self, model, step=step))
    cfg = compose([*TINY, "+step=layer_norm", "scale.epochs=2", "scale.global_batch_size=32"])  # accumulate 4
    record = train(cfg, tmp_path)
    assert record["accumulate_grad_batches"] == 4 and record["optimizer_steps"] == 4  # 8 batches of 8 an epoch
    assert calls == [1, 2, 3, 4]  # once after each optimizer step of both epochs, not after each of 16 batches


def test_global_batch_sets_accumulation_and_lr(tmp_path):
    cfg = compose([*TINY, "scale.global_batch_size=32", "+trainer.limit_train_batches=4",
                   "+trainer.limit_val_batches=1"])
    record = train(cfg, tmp_path)
    assert (record["global_batch_size"], record["batch_size"], record["accumulate_grad_batches"]) == (32, 8, 4)
    assert record["lr"] == pytest.approx(0.1 * (32 / 256) ** 0.5)


def test_relaunching_ddp_is_refused_with_the_fix(tmp_path):
    cfg = compose([*TINY, *CPU_DDP, "trainer.strategy=ddp"])
    with pytest.raises(ValueError, match="Use trainer=ddp"):
        train(cfg, tmp_path)
    assert not (tmp_path / "result.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_trainer_without_a_gpu_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="torch sees no GPU here .* use trainer=cpu"):
        train(compose([*TINY, "trainer=gpu"]), tmp_path)
