"""The benchmark tools: training speed ours vs timm, the loader's speed, and the pre-resized copy of a folder."""

import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from roadmap.config.composition import compose
from roadmap.data.prepare import main as resize_main
from roadmap.data.prepare import resize_folder, resized_size
from roadmap.model.flops import count_params
from roadmap.tools.benchmark import main
from roadmap.tools.loader import loader_throughput, make_fake_folder
from roadmap.tools.speed import CONVNEXT_STEP, ModelSpec, Settings, benchmark, default_specs

# One thread: tiny models on a busy machine are fastest without OpenMP's waiting.
TINY = Settings(device="cpu", batch_size=4, image_size=32, steps=1, warmup=2, rounds=2, amp=False,
                channels_last=False, compile=False, threads=1, num_classes=10)


def test_benchmark_ratio_is_ours_over_timm():
    specs = [ModelSpec("ours", overrides=("data.num_classes=10",), versus="timm"),
             ModelSpec("timm", timm_name="resnet10t", timm_kwargs=(("num_classes", 10),))]
    threads = torch.get_num_threads()
    rows = {row.name: row for row in benchmark(specs, TINY)}
    assert torch.get_num_threads() == threads  # put back for the rest of the session
    for row in rows.values():
        assert len(row.rounds) == TINY.rounds and min(row.rounds) > 0
        assert row.images_per_second == statistics.median(row.rounds)
    assert rows["ours"].ratio == pytest.approx(rows["ours"].images_per_second / rows["timm"].images_per_second)
    assert rows["ours"].versus == "timm" and rows["timm"].ratio is None
    # Weights, gradients and two AdamW moments: the peak holds at least four copies of the weights.
    weights_mb = count_params(specs[1].build()) * 4 / 2**20
    assert rows["timm"].peak_memory_mb >= 4 * weights_mb


def test_default_pairs_compare_like_with_like():
    """The ConvNeXt-Ts share the stochastic depth asked for, ours at the roadmap's last step, once per pointwise
    kind; the ResNet-50s have none. (That the nets equal timm's, weight for weight, is tests/test_network.py's.)"""
    specs = {spec.name: spec for spec in default_specs(drop_path=0.2)}
    for pointwise in ("conv", "linear"):
        spec = specs[f"ours_convnext_t_{pointwise}"]
        cfg = compose(spec.overrides)
        assert (cfg.step, cfg.model.pointwise, cfg.model.drop_path_rate) == (CONVNEXT_STEP, pointwise, 0.2)
        assert spec.versus == "timm_convnext_tiny"
    assert dict(specs["timm_convnext_tiny"].timm_kwargs) == {"drop_path_rate": 0.2}
    assert compose(specs["ours_resnet50"].overrides).model.drop_path_rate == 0
    assert specs["ours_resnet50"].versus == "timm_resnet50" and not specs["timm_resnet50"].timm_kwargs


def test_unknown_model_is_refused():
    with pytest.raises(SystemExit, match="unknown --models"):
        main(["--models", "ours_resnet50,vit"])


def test_a_job_and_its_bare_step_are_timed_on_the_same_network_and_shape(tmp_path, capsys):
    overrides = ("+step=layer_norm", "data=synthetic", "data.train_size=48", "scale.batch_size=8",
                 "scale.input_size=40")  # not the proxy's own: the bare step must take the job's shape
    main(["job", *overrides, "--rounds", "1", "--steps", "2", "--batches", "4"])
    out = capsys.readouterr().out
    assert "layer_norm at the proxy scale, batch 8, 40 px" in out
    bare, job, ratio = re.search(r"median: bare step (\d+) img/s, job (\d+) img/s, job / bare ([\d.]+)", out).groups()
    assert int(bare) > 0 and int(job) > 0 and float(ratio) > 0


def test_loader_throughput_on_a_fake_folder(tmp_path):
    root = make_fake_folder(tmp_path / "fake", classes=2, per_class=8, val_per_class=2, size=(64, 48))
    assert ImageFolder(str(root / "train")).classes == ["class0", "class1"]
    with Image.open(root / "train" / "class0" / "00000.JPEG") as image:
        assert image.size == (64, 48) and image.format == "JPEG"
    speeds = loader_throughput(root, [0, 1], batch_size=4, batches=3, overrides=("data.input_size=32",))
    assert set(speeds) == {0, 1} and all(speed > 0 for speed in speeds.values())


def test_resized_size_keeps_the_aspect_ratio():
    assert resized_size(500, 375, 256) == (341, 256)
    assert resized_size(375, 500, 256) == (256, 341)


@pytest.fixture
def source(tmp_path) -> Path:
    """Two classes of 64x48 JPEGs, a small PNG, a truncated JPEG and a file that is no image."""
    root = make_fake_folder(tmp_path / "src", classes=2, per_class=3, val_per_class=1, size=(64, 48))
    Image.new("RGB", (20, 30), "red").save(root / "train" / "class1" / "small.png")
    whole = (root / "train" / "class0" / "00000.JPEG").read_bytes()
    (root / "train" / "class0" / "broken.JPEG").write_bytes(whole[: len(whole) // 2])
    (root / "train" / "notes.txt").write_text("not an image")
    return root


def images(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".JPEG", ".png")}


def test_resize_folder_keeps_the_layout_and_skips_unreadable_images(source, tmp_path):
    target = tmp_path / "dst"
    report = resize_folder(source, target, size=32, workers=2)
    broken = str(Path("train/class0/broken.JPEG"))
    assert images(target) == images(source) - {broken}
    assert list(report.unreadable) == [broken]
    assert (report.resized, report.copied, report.already_done) == (8, 1, 0)
    assert ImageFolder(str(target / "train")).classes == ["class0", "class1"]
    for path in images(target) - {str(Path("train/class1/small.png"))}:
        with Image.open(target / path) as image:
            assert image.size == (43, 32) and image.format == "JPEG"
    small = Path("train/class1/small.png")
    assert (target / small).read_bytes() == (source / small).read_bytes()  # no larger than 32: copied as it was
    assert not (target / "train" / "notes.txt").exists()


def test_an_interrupted_resize_resumes_without_redoing_finished_files(source, tmp_path, capsys):
    target = tmp_path / "dst"
    resize_folder(source, target, size=32, workers=2)
    # An interruption: one file never renamed into place, its partial write left behind.
    lost = target / "train" / "class1" / "00002.JPEG"
    lost.unlink()
    (lost.parent / f".{lost.name}.part").write_bytes(b"half a jpeg")
    finished = {p: (target / p).stat().st_mtime_ns for p in images(target)}
    resize_main([str(source), str(target), "--size", "32", "--workers", "2"])
    out = capsys.readouterr().out
    assert "1 resized, 0 copied as they were, 8 already done, 1 unreadable" in out
    assert "broken.JPEG" in out
    assert {p: (target / p).stat().st_mtime_ns for p in finished} == finished
    with Image.open(lost) as image:
        assert image.size == (43, 32)
    assert not list(target.rglob("*.part"))


def test_the_benchmark_reads_the_machine_without_loading_lightning():
    """Memory and device names come from roadmap/training/system.py; only `bench.py job` trains, and loads Lightning
    then."""
    code = ("import sys, roadmap.tools.benchmark; "
            "print(sorted({'lightning', 'roadmap.training.job'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
