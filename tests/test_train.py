"""Training: every step fits, records are complete, runs are deterministic and resumable, faults are clear."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch
from helpers import TINY, finish, read_offline_run, start, tiny_cfg
from lightning.pytorch.callbacks import Callback

from roadmap.config.composition import step_overrides
from roadmap.results.records import RecordWarning, load_records
from roadmap.steps import STEPS, chain
from roadmap.training.job import Recorder, same_config, skip_or_continue, train
from roadmap.training.module import NonFiniteLossError


@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_fits_one_batch(step, tmp_path):
    cfg = tiny_cfg(*step_overrides(step), "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1")
    record = train(cfg, tmp_path)
    assert record["step"] == step and record["status"] == "completed"
    assert len(record["train_loss"]) == 1 and record["train_loss"][0] > 0
    assert 0 <= record["top1"] <= record["top5"] <= 100
    assert (record["ema_top1"] is not None) == (step in ("layer_norm", "separate_downsampling"))
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["params"] == record["params"] > 0 and on_disk["gflops_224"] > on_disk["gflops"] > 0
    assert on_disk["data_source"] == "generated from seed 0"
    for key in ("train_images_per_second", "peak_memory_mb", "wall_seconds", "git_commit", "config", "deltas"):
        assert on_disk[key] is not None, key
    started, finished = (datetime.fromisoformat(on_disk[key]) for key in ("started_at", "finished_at"))
    assert started.utcoffset() == timedelta(0) and started <= finished <= datetime.now(timezone.utc)
    assert abs((finished - started).total_seconds() - on_disk["wall_seconds"]) < 2


def test_same_seed_gives_identical_metrics(tmp_path):
    short = ("+step=separate_downsampling", "+trainer.limit_train_batches=8")
    a = train(tiny_cfg(*short, "seed=3"), tmp_path / "a")
    b = train(tiny_cfg(*short, "seed=3"), tmp_path / "b")
    c = train(tiny_cfg(*short, "seed=4"), tmp_path / "c")
    assert (a["train_loss"], a["top1"], a["top5"]) == (b["train_loss"], b["top1"], b["top5"])
    assert a["train_loss"] != c["train_loss"]


class Interrupt(Callback):
    """Simulates a crash as the second epoch starts, after the first epoch's checkpoint was written."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("data", [
    ("data=synthetic",),
    # real images through timm's RandAugment, Random Erasing and Mixup, with a loader worker
    ("data=fashion_mnist", "data.train_subset=64", "data.val_subset=40", "data.num_workers=1")])
def test_an_interrupted_run_continues_to_the_uninterrupted_record(data, tmp_path):
    """As a study run again continues its interrupted jobs: in the same folder, from the last checkpoint; then the
    completed job is skipped, and another config's job is refused that folder."""
    overrides = ("+step=separate_downsampling", "scale.epochs=2", *data)
    whole = train(tiny_cfg(*overrides), tmp_path / "whole")
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(tiny_cfg(*overrides), tmp_path / "cut", callbacks=[Interrupt()])
    assert not (tmp_path / "cut" / "result.json").exists()
    again = tiny_cfg(*overrides)
    assert not skip_or_continue(again, tmp_path / "cut")
    assert again.resume == str((tmp_path / "cut" / "checkpoints" / "last.ckpt").resolve())  # the file it links to
    resumed = train(again, tmp_path / "cut")
    for key in ("train_loss", "top1", "top5", "ema_top1"):
        assert resumed[key] == whole[key], key
    assert resumed["config"] == whole["config"]  # the record says what ran, not how it was resumed
    assert skip_or_continue(tiny_cfg(*overrides), tmp_path / "cut")  # completed now: skipped
    with pytest.raises(ValueError, match="completed record of another config"):
        skip_or_continue(tiny_cfg(*overrides, "seed=5"), tmp_path / "cut")


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    class PoisonSecondEpoch(Callback):
        """From the second epoch's second batch on, the loss is NaN (and its gradients poison the weights)."""

        def on_train_batch_start(self, trainer, module, batch, idx):
            if (trainer.current_epoch, idx) == (1, 1):
                forward = module.train_loss.forward
                monkeypatch.setattr(module.train_loss, "forward", lambda *a: forward(*a) * float("nan"))

    # The losses are checked in arrears (no host sync per step), yet the message names the first bad batch.
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 1, batch 1.*last.ckpt"):
        train(tiny_cfg("scale.epochs=2"), tmp_path, callbacks=[PoisonSecondEpoch()])
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 0 and len(checkpoint["loss_curve"]) == 1
    assert not (tmp_path / "result.json").exists()


def test_odd_batch_with_mixup_is_refused_before_reading_data(tmp_path):
    cfg = tiny_cfg("+step=modern_recipe", "scale.batch_size=7", "scale.global_batch_size=7", "data=imagenet",
                   f"data.root={tmp_path}/missing", "data.num_classes=10")
    with pytest.raises(ValueError, match=r"even batch size.*data.batch_size=7"):
        train(cfg, tmp_path)


def test_global_batch_must_be_a_multiple_of_the_device_batch(tmp_path):
    with pytest.raises(ValueError, match="scale.global_batch_size=12"):
        train(tiny_cfg("scale.global_batch_size=12"), tmp_path)


def test_a_wandb_run_carries_its_study_place_and_figures(tmp_path):
    cfg = tiny_cfg("+step=gelu", "study=roadmap", "logger.wandb.enabled=true", "+trainer.limit_train_batches=2",
                   "trainer.log_every_n_steps=1")
    record = train(cfg, tmp_path)
    run = read_offline_run(tmp_path / "wandb")
    assert run["group"] == "roadmap:synthetic:proxy:resnet50:gelu" == record["wandb_group"]
    assert (run["name"], run["job_type"]) == ("gelu-seed0", "roadmap")
    gelu = STEPS["gelu"]
    expected = {"roadmap_index": 12, "stage": "micro design", "paper_top1": gelu.paper["resnet50"].top1,
                "study_key": "roadmap:synthetic:proxy:resnet50"}
    for key, value in expected.items():
        assert run["summary"][key] == run["config"][key] == record[key] == value, key
    assert run["summary"]["deltas"] == record["deltas"] == list(run["config"]["deltas"]) == chain("gelu")
    for key in ("top1", "params", "gflops", "train_images_per_second", "peak_memory_mb"):
        assert run["summary"][key] == pytest.approx(record[key]), key
    assert {"train/loss", "train/epoch_loss", "val/top1", "val/loss"} <= run["history"]


def test_a_named_model_is_named_after_itself_and_kept_out_of_the_roadmap(tmp_path):
    record = train(tiny_cfg("model=convnext_t", "+trainer.limit_train_batches=1"), tmp_path / "runs" / "convnext_t")
    assert (record["name"], record["step"], record["model_name"]) == ("convnext_t", None, "convnext_t")
    assert record["wandb_group"] == "free:synthetic:proxy:resnet50:convnext_t"
    assert record["recipe_changes"]["stochastic_depth"]["recipe"] == 0.1  # Table 5's rate for T, fitted
    assert record["config"]["recipe"]["name"] == "modern"
    with pytest.warns(RecordWarning, match="convnext_t is a named model, not a roadmap step"):
        assert load_records(tmp_path / "runs") == []
    assert [r["name"] for r in load_records(tmp_path / "runs", roadmap_only=False)] == ["convnext_t"]


def test_three_seed_multirun_writes_three_records_and_a_rerun_skips_them(tmp_path):
    # As the Makefile's studies run: a fixed sweep folder, one folder per job named by the job.
    args = ["+step=inverted_bottleneck", "seed=0,1,2", *TINY, f"hydra.sweep.dir={tmp_path}",
            "hydra.sweep.subdir=${name}-seed${seed}", "-m"]
    finish(start(args, tmp_path / "first.log"), tmp_path / "first.log")
    paths = sorted(tmp_path.rglob("result.json"))
    records = [json.loads(p.read_text()) for p in paths]
    assert sorted(r["seed"] for r in records) == [0, 1, 2]
    assert {r["step"] for r in records} == {"inverted_bottleneck"}
    assert len({tuple(r["train_loss"]) for r in records}) == 3
    written = [p.stat().st_mtime_ns for p in paths]
    again = finish(start(args, tmp_path / "again.log"), tmp_path / "again.log")
    assert again.count("is already completed") == 3
    assert [p.stat().st_mtime_ns for p in paths] == written  # nothing trained, nothing rewritten


def test_a_record_from_before_a_new_null_knob_is_still_this_config():
    composed = {"model": {"depths": [3, 4], "weights": None}, "seed": 0}
    assert same_config({"model": {"depths": [3, 4]}, "seed": 0}, composed)  # written before `weights` existed
    assert not same_config({"model": {"depths": [3, 3]}, "seed": 0}, composed)
    assert not same_config({"model": {"depths": [3, 4], "weights": "w.pt"}, "seed": 0}, composed)
    assert not same_config({"model": {"depths": [3, 4]}}, composed)  # a missing key with a value is a difference


def test_a_record_names_its_network_by_class_not_by_module_path():
    composed = {"model": {"_target_": "roadmap.model.network.RoadmapNet", "depths": [3, 4]}}
    assert same_config({"model": {"_target_": "roadmap.network.RoadmapNet", "depths": [3, 4]}}, composed)
    assert not same_config({"model": {"_target_": "roadmap.model.attention.swin_transformer", "depths": [3, 4]}},
                           composed)
    assert not same_config({"model": {"name": "roadmap.network.RoadmapNet"}}, {"model": {"name": "RoadmapNet"}})


class SeenAtStart(Callback):
    """What the run trains with, as fit starts: the data module's augmentations and the network's drop path."""

    def on_train_start(self, trainer, module):
        self.augment = dict(trainer.datamodule.augment)
        self.erasing = trainer.datamodule.finish.erasing
        self.crop = trainer.datamodule.train_set.transform.transforms[0].scale
        self.drop_path = max(m.drop_prob for m in module.model.modules() if hasattr(m, "drop_prob"))


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Debian's Fashion-MNIST")
def test_data_network_and_module_all_train_with_the_fitted_recipe(tmp_path):
    seen = SeenAtStart()
    record = train(tiny_cfg("+step=separate_downsampling", "data=fashion_mnist", "data.train_subset=64",
                            "data.val_subset=40", "+trainer.limit_train_batches=2"), tmp_path, callbacks=[seen])
    used = {key: change["used"] for key, change in record["recipe_changes"].items()}
    assert seen.augment["random_erasing"] == seen.erasing == used["augment.random_erasing"] < 0.25
    assert list(seen.crop) == used["augment.train_crop_scale"] != [0.08, 1.0]
    assert seen.augment["randaugment"] == used["augment.randaugment"] != "rand-m9-mstd0.5-inc1"
    assert seen.drop_path == pytest.approx(used["stochastic_depth"]) and used["stochastic_depth"] < 0.1


def test_a_record_keeps_the_recipe_as_composed_and_what_the_budget_changed(tmp_path):
    record = train(tiny_cfg("+step=layer_norm", "+trainer.limit_train_batches=2"), tmp_path)
    changes = record["recipe_changes"]
    assert changes["schedule.name"] == {"recipe": "cosine", "used": "linear"}
    assert changes["epochs"] == {"recipe": 300, "used": 1}
    assert changes["ema.decay"]["recipe"] == 0.9999 and changes["ema.decay"]["used"] < 0.9999
    assert record["config"]["recipe"]["schedule"]["name"] == "cosine"  # as composed
    assert record["optimizer_steps"] == 256 // 8  # the synthetic set's 256 images at batch 8, one epoch


def test_a_failing_job_loses_no_other_record(tmp_path):
    # A global batch of 12 passes the sweep's check (it needs the device count) and fails in its job.
    tiny = [o for o in TINY if not o.startswith("scale.global_batch_size=")]
    # one job folder per batch: the two jobs share a name and a seed, the default folder's only keys
    run = start(["scale.global_batch_size=8,12", *tiny, f"hydra.sweep.dir={tmp_path}",
                 "hydra.sweep.subdir=batch${scale.global_batch_size}", "-m"], tmp_path / "run.log")
    run.join(timeout=300)
    assert run.exitcode != 0
    assert "1 job(s) failed" in (tmp_path / "run.log").read_text()
    records = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.rglob("result.json")}
    statuses = sorted(r["status"] for r in records.values())
    assert statuses == ["completed", "failed"]
    failed = next(r for r in records.values() if r["status"] == "failed")
    assert "scale.global_batch_size=12" in failed["error"]


def test_throughput_is_timed_from_the_first_batch_after_the_warm_up_to_the_end_of_each_epoch(monkeypatch):
    """Two epochs of four 2-image batches, warm-up 5: the steady clock starts at the sixth batch (the second of
    epoch 2) and stops when the epoch's training ends, so it counts 3 batches over that span alone; the clock is
    read only when it starts or stops (each read waits for the GPU), never once per step."""
    readings = iter(range(100))
    monkeypatch.setattr(Recorder, "_now", staticmethod(lambda: float(next(readings))))
    recorder = Recorder(tiny_cfg(), Path("unused"), started=0.0, run={}, warmup=5)
    batch = (torch.zeros(2, 3, 4, 4), torch.zeros(2))
    for _ in range(2):
        for idx in range(4):
            recorder.on_train_batch_start(None, None, batch, idx)
        recorder.on_train_epoch_end(None, None)
    # readings: 0 epoch 1 starts, 1 it ends; 2 epoch 2 starts, 3 the sixth batch starts, 4 epoch 2 ends
    assert recorder.clocks == {"all": [1.0 + 2.0, 16], "steady": [1.0, 6]}
    assert recorder.images_per_second == 6.0
    assert next(readings) == 5
    short = Recorder(tiny_cfg(), Path("unused"), started=0.0, run={}, warmup=5)
    for idx in range(2):  # fewer batches than the warm-up: every batch counts
        short.on_train_batch_start(None, None, batch, idx)
    short.on_validation_start(None, None)
    assert short.images_per_second == 4 / (7 - 6)
