"""scripts/plan.py: a run's or a multirun's cost before anything runs; roadmap/tools/decoding.py: loader workers."""

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from roadmap.errors import ConfigError
from roadmap.tools import decoding
from roadmap.tools.decoding import rates_of, read_rates
from roadmap.tools.plan import jobs_overrides, main, plan
from roadmap.tools.sizes import data_sizes

PAPER = ["scale=paper", "data=imagenet", "data.root=/nonexistent", "trainer=gpu"]


def rate(network: str, what: str, compile: str = "eager") -> float:
    return rates_of("H100", read_rates())[(network, what, compile)].img_s


@pytest.fixture(scope="module")
def convnext_paper() -> dict:
    return plan(["+step=separate_downsampling", *PAPER])


def test_proxy_sweep_expands_in_hydras_order_with_the_proxys_numbers() -> None:
    result = plan(["seed=0,1,2", "+step=kernel_7,gelu"], multirun=True)
    # the basic sweeper's order: the product of the sweeps, the first on the command line outermost
    assert [(j["name"], j["seed"]) for j in result["jobs"]] == [
        ("kernel_7", 0), ("gelu", 0), ("kernel_7", 1), ("gelu", 1), ("kernel_7", 2), ("gelu", 2)]
    for job in result["jobs"]:
        assert job["train_images"] == 60_000 and job["images_seen"] == 60_000 * job["epochs"]
        assert job["steps_per_epoch"] == 468 and job["steps"] == 468 * job["epochs"]  # 60,000 // 128
        assert job["global_batch"] == 128 and job["peak_lr"] == pytest.approx(4e-3)  # adamw: lr_scaling none
    assert result["totals"]["jobs"] == 6
    assert result["totals"]["gpu_hours"] == pytest.approx(sum(j["gpu_hours"] for j in result["jobs"]))


def test_paper_scale_convnext_t(convnext_paper: dict) -> None:
    (job,) = convnext_paper["jobs"]
    assert job["epochs"] == 300 and job["train_images"] == 1_281_167 and job["images_seen"] == 300 * 1_281_167
    assert job["global_batch"] == 4096 and job["accumulation"] == 32
    assert job["steps_per_epoch"] == 1_281_167 // 4096 == 312 and job["steps"] == 300 * 312
    assert job["peak_lr"] == pytest.approx(4e-3)
    assert (job["warmup"], job["warmup_epochs"], job["warmup_from"]) == ("the recipe's", 20, 0.0)
    assert job["gflops"] == pytest.approx(4.49, abs=0.05)  # the paper's Table 10
    assert job["family"] == "convnext"
    # a whole ConvNeXt-T job's measured rate, scaled by GFLOPs (the reference is ConvNeXt-T itself)
    whole = rate("convnext_t", "whole_job")
    assert job["rate"] == pytest.approx(whole * 4.456 / job["gflops"])
    assert job["train_hours"] == pytest.approx(job["images_trained"] / job["rate"] / 3600)
    assert job["images_trained"] == job["steps"] * 4096
    # 300 validations over 50,000 images, the network and its EMA, at 3x the training rate
    assert job["validations"] == 300 and job["val_forwards"] == 2
    assert job["val_hours"] == pytest.approx(300 * 50_000 * 2 / (3 * job["rate"]) / 3600)
    assert job["hours"] == pytest.approx(job["train_hours"] + job["val_hours"]) == job["gpu_hours"]
    # weights, AdamW's two moments and the EMA, 4 bytes each
    assert job["checkpoint_gb"] == pytest.approx(job["params"] * 4 * 4 / 1e9)
    assert job["checkpoint_gb_saving"] == pytest.approx(2 * job["checkpoint_gb"])
    assert any("1,281,167" in note for note in convnext_paper["notes"])
    assert any("1792" in note and "nvidia-h100-80gb-hbm3.md" in note for note in convnext_paper["notes"])


def test_paper_scale_original_recipe_warms_up_gradually_from_the_base_lr() -> None:
    (job,) = plan(PAPER)["jobs"]
    assert job["name"] == "baseline" and job["epochs"] == 90 and job["steps"] == 90 * 312
    assert job["peak_lr"] == pytest.approx(1.6)  # 0.1 x 4096 / 256
    assert (job["warmup"], job["warmup_epochs"], job["warmup_from"]) == ("gradual", 5, 0.1)
    assert job["family"] == "resnet" and job["val_forwards"] == 1  # no EMA with BatchNorm
    bare, whole, convnext_bare = rate("resnet50", "bare_step"), rate("convnext_t", "whole_job"), rate(
        "convnext_t", "bare_step")
    assert job["rate"] == pytest.approx(bare * 4.089 / job["gflops"] * whole / convnext_bare)
    assert job["checkpoint_gb"] == pytest.approx(job["params"] * 4 * 2 / 1e9)  # weights and SGD's momentum


def test_leave_one_out_expands_its_variants_times_the_seeds() -> None:
    jobs = jobs_overrides(["+ablation=leave_one_out", "seed=0,1,2"])
    deltas = {next(o for o in job if o.startswith("+delta=")) for job in jobs}
    assert len(deltas) == 14 and len(jobs) == 14 * 3
    assert {next(o for o in job if o.startswith("seed=")) for job in jobs} == {"seed=0", "seed=1", "seed=2"}


def test_json_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "plan.json"
    main(["+step=gelu", "--json", str(path)])
    printed = capsys.readouterr().out
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(plan(["+step=gelu"])))
    assert written["jobs"][0]["name"] == "gelu" and "gelu" in printed and "GPU-hours" in printed


def test_sweep_dir_prints_the_composed_folder(capsys: pytest.CaptureFixture) -> None:
    main(["--sweep-dir", "-m", "+ablation=leave_one_out", "seed=0,1"])
    assert capsys.readouterr().out == "multirun/leave_one_out/fashionmnist-proxy-resnet50\n"
    # a study at another setting writes beside it; the same command, run again, to the same folder
    main(["--sweep-dir", "-m", "+step=gelu,layer_norm", "study=roadmap", "scale=paper", "data=imagenet",
          "data.root=/datasets/imagenet"])
    assert capsys.readouterr().out == "multirun/roadmap/folder-paper-resnet50\n"
    main(["--sweep-dir", "-m", "+ablation=ladder", "scale.epochs=3", "scale.budget.regularization=sqrt", "seed=0,1"])
    assert capsys.readouterr().out == "multirun/ladder/fashionmnist-proxy_3_passes_sqrt-resnet50\n"
    main(["--sweep-dir", "hydra.sweep.dir=/scratch/roadmap"])
    assert capsys.readouterr().out == "/scratch/roadmap\n"


def test_unknown_gpu_and_a_sweep_without_m_are_clear_errors() -> None:
    with pytest.raises(SystemExit, match="--gpu A100: no measured rates.*known: H100"):
        main(["--gpu", "A100"])
    with pytest.raises(SystemExit, match="seed=0,1: a sweep needs -m"):
        main(["seed=0,1"])


def test_training_set_sizes_without_reading_an_image(tmp_path: Path) -> None:
    for split, per_class in (("train", 3), ("val", 1)):
        for name in ("a", "b"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                (folder / f"{i}.JPEG").write_bytes(b"")  # never opened
            (folder / "notes.txt").write_text("")
    folder = {"_target_": "roadmap.data.FolderData", "root": str(tmp_path), "num_classes": None,
              "train_subset": None, "val_subset": None}
    assert data_sizes(OmegaConf.create(folder))[:3] == (6, 2, 2)
    assert data_sizes(OmegaConf.create({**folder, "root": str(tmp_path / "none")}))[:3] == (1_281_167, 50_000, 1000)
    assert data_sizes(OmegaConf.create({**folder, "train_subset": 4}))[0] == 4
    synthetic = {"_target_": "roadmap.data.SyntheticData", "train_size": 256, "val_size": 64, "num_classes": 10,
                 "train_subset": None, "val_subset": None}
    assert data_sizes(OmegaConf.create(synthetic))[:2] == (256, 64)
    with pytest.raises(ConfigError, match="does not know"):
        data_sizes(OmegaConf.create({**synthetic, "_target_": "x.Other"}))


def test_decoding_images_table_and_workers(tmp_path: Path) -> None:
    paths = decoding.make_images(tmp_path, 3)
    for path in paths["full"]:
        with Image.open(path) as image:
            assert image.size == (500, 375) and image.format == "JPEG"
        assert 80_000 < path.stat().st_size < 160_000  # ImageNet's typical file
    for path in paths["resized"]:
        with Image.open(path) as image:
            assert min(image.size) == 256
    timings = decoding.measure(paths, rounds=1)
    rates = {("convnext_t", "whole_job", "compiled"): 1000.0}
    rows = decoding.table(timings, rates)
    assert sorted((r["recipe"], r["files"]) for r in rows) == sorted(
        (recipe, files) for recipe in decoding.RECIPES for files in decoding.FILE_KINDS)
    for row, timing in zip(rows, timings, strict=True):
        assert row["workers_convnext_t_whole_job_compiled"] == math.ceil(1000 / timing.per_core)
    assert decoding.workers_needed(1000, 300) == 4 and decoding.workers_needed(900, 300) == 3
    assert "CPU time per core" in decoding.to_markdown(rows, rates, "cmd", 1)
