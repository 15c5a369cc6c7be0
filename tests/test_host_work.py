"""No host work per training step: the step reads nothing back from the device, the losses reach the loggers at
the NaN check's wait, and trainer.compile can ask for CUDA graphs."""

import csv

import pytest
import torch
from helpers import tiny_cfg
from lightning.pytorch.callbacks import Callback

from roadmap.errors import ConfigError
from roadmap.training.job import train
from roadmap.training.module import CHECK_LOSS_EVERY, RoadmapModule, compile_options
from roadmap.training.validation import check_config

READS = ("item", "tolist", "__bool__", "__int__", "__float__", "numpy")  # each waits for the device on a GPU


class StepLogs(Callback):
    """The values logged through Lightning for each step, which its loggers and progress bar read on the host."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.keys |= {key for key, result in trainer._results.items() if result.meta.on_step}


def test_a_training_step_reads_nothing_back_and_the_losses_are_logged_at_their_steps(tmp_path, monkeypatch):
    reads: list[str] = []
    step = RoadmapModule.training_step

    def counted(self, batch, batch_idx):
        originals = {name: getattr(torch.Tensor, name) for name in READS}

        def spy(name):
            def read(tensor, *args, **kwargs):
                reads.append(name)
                return originals[name](tensor, *args, **kwargs)
            return read

        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, spy(name))
        try:
            return step(self, batch, batch_idx)
        finally:
            for name, original in originals.items():
                monkeypatch.setattr(torch.Tensor, name, original)

    monkeypatch.setattr(RoadmapModule, "training_step", counted)
    logs = StepLogs()
    # Mixup and CutMix (the modern recipe), stochastic depth, a BatchNorm-free network with its EMA; 32 batches
    record = train(tiny_cfg("+step=separate_downsampling", "trainer.log_every_n_steps=3"), tmp_path, [logs])
    assert record["optimizer_steps"] == 32 < CHECK_LOSS_EVERY
    assert reads == [] and logs.keys == set()
    with open(tmp_path / "csv" / "metrics.csv") as f:
        logged = {int(row["step"]): float(row["train/loss"]) for row in csv.DictReader(f) if row["train/loss"]}
    assert sorted(logged) == list(range(2, 32, 3))  # every third optimizer step, as Lightning counts them
    assert all(0 < loss < 10 for loss in logged.values())


def test_trainer_compile_takes_a_torch_compile_mode(tmp_path, monkeypatch):
    assert compile_options(False) is None and compile_options(True) == {}
    assert compile_options("reduce-overhead") == {"mode": "reduce-overhead"}
    assert compile_options("cudagraphs") == {"backend": "cudagraphs"}
    asked = []

    def fake_compile(model, **options):
        asked.append(options)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    train(tiny_cfg("trainer.compile=reduce-overhead", "+trainer.limit_train_batches=1"), tmp_path)
    assert asked == [{"mode": "reduce-overhead"}]
    with pytest.raises(ConfigError, match="trainer.compile='cuda-graphs'.*reduce-overhead"):
        check_config(tiny_cfg("trainer.compile=cuda-graphs"))
