"""The calibration study: candidates' configs, their table and figure, on hand-made records and composed configs."""

import functools
import json
import statistics
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from roadmap.config.composition import CONF_DIR, compose
from roadmap.studies import calibration
from roadmap.studies.calibration import CENTRE, ENDPOINTS, summarize

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = sorted(path.stem for path in (CONF_DIR / "calibration").glob("*.yaml"))
PROXY = OmegaConf.to_container(compose(["scale=calibration_centre"]).scale, resolve=True)  # the calibration's centre


def record(candidate: str, name: str, seed: int, top1: float, scale: dict, **changes) -> dict:
    return {"status": "completed", "name": name, "step": name, "deltas": [] if name == "baseline" else ["x"],
            "seed": seed, "regime": "resnet50", "scale": "proxy", "data": "FashionMNISTData", "input_size": 32,
            "top1": top1, "top5": 99.0, "ema_top1": None if name == "baseline" else top1 - 0.5, "params": 1,
            "gflops": 0.001, "gflops_224": 0.05, "train_images_per_second": 500.0 + seed, "peak_memory_mb": 900.0,
            "device": "cpu", "train_loss": [1.0, 0.4 + seed / 10], "wall_seconds": 120.0 + 6 * seed, "epochs": 2,
            "batch_size": scale["batch_size"], "val_images": 10000, "optimizer_steps": 936,
            "config": {"calibration": candidate, "scale": scale}, **changes}


DEFAULT = compose()


@functools.cache
def changes(name: str) -> tuple[str, ...]:
    cfg = compose([f"+calibration={name}"])
    assert cfg.calibration == name
    assert cfg.model == DEFAULT.model and cfg.recipe == DEFAULT.recipe, name  # the proxy's networks
    return tuple(calibration._changed(OmegaConf.to_container(cfg.scale, resolve=True), PROXY))


def parts(name: str) -> tuple[str, str] | None:
    """The two candidates a combined candidate is named after (`full_frame_epochs_2`), if it is one."""
    splits = [(name[:i], name[i + 1:]) for i, char in enumerate(name) if char == "_"]
    return next(((a, b) for a, b in splits if a in CANDIDATES and b in CANDIDATES), None)


def test_every_candidate_is_the_proxy_with_one_change_or_two_candidates_together():
    assert CENTRE in CANDIDATES and len(CANDIDATES) >= 10
    for name in CANDIDATES:
        changed = changes(name)
        assert (name == CENTRE) == (changed == ()), (name, changed)
        if (pair := parts(name)) is not None:  # a combination: exactly both candidates' changes
            assert list(changed) == sorted(changes(pair[0]) + changes(pair[1])), (name, changed)
        else:
            assert len({key.split("=")[0] for key in changed}) <= 2, (name, changed)  # one factor (epochs may follow)
    assert parts("full_frame_epochs_2") == ("full_frame", "epochs_2") and parts("width_025") is None


def test_summary_per_candidate_and_network():
    narrow = {**PROXY, "width_multiplier": 0.25}
    by_candidate = {
        CENTRE: [record(CENTRE, n, s, 80 + s + 5 * (n == "baseline"), PROXY) for n in ENDPOINTS for s in range(3)],
        "width_025": [record("width_025", "baseline", s, 70.0 + 2 * s, narrow) for s in range(3)],
    }
    rows = summarize(by_candidate, default={**narrow, "name": "another"})  # the name alone does not count
    assert [r["default"] for r in rows] == [False, False, True]
    assert [(r["candidate"], r["network"]) for r in rows] == [
        (CENTRE, "baseline"), (CENTRE, "separate_downsampling"), ("width_025", "baseline")]
    centre, _, narrow_row = rows
    assert centre["top1_mean"] == pytest.approx(86.0) and centre["top1_sd"] == pytest.approx(1.0)
    assert centre["ema_top1_mean"] is None and rows[1]["ema_top1_mean"] == pytest.approx(80.5)
    assert centre["final_train_loss_mean"] == pytest.approx(0.5)
    assert centre["minutes_mean"] == pytest.approx(2.1) and centre["train_images_per_second_mean"] == 501.0
    assert narrow_row["change"] == "scale.width_multiplier=0.25" and centre["change"] == ""
    assert narrow_row["top1_sd"] == pytest.approx(statistics.stdev([70, 72, 74]))
    table = calibration.to_markdown(rows)
    assert "| width_025 | width_multiplier=0.25 | baseline | 3 | 72.00 | 2.00 |" in table
    assert "The default scale (`scale=proxy`, conf/scale/proxy.yaml) is candidate `width_025`." in table
    assert "is candidate" not in calibration.to_markdown(summarize(by_candidate))


def test_collect_table_and_figure_from_a_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    for candidate, scale in ((CENTRE, PROXY), ("epochs_1", {**PROXY, "epochs": 1})):
        for name in ENDPOINTS:
            for seed in range(2):
                path = sweep / candidate / f"{name}-seed{seed}" / "result.json"
                path.parent.mkdir(parents=True)
                path.write_text(json.dumps(record(candidate, name, seed, 85.0 + seed, scale)))
    experiment = tmp_path / "experiment"
    calibration.main(["--runs", str(sweep), "--experiment", str(experiment)])
    assert sorted(p.name for p in (experiment / "records" / "epochs_1").iterdir()) == [
        "baseline-seed0.json", "baseline-seed1.json", "separate_downsampling-seed0.json",
        "separate_downsampling-seed1.json"]
    for name in ("table.md", "table.csv", "calibration.png", "calibration.svg"):
        assert (experiment / name).stat().st_size > 0, name
    svg = (experiment / "calibration.svg").read_bytes()
    calibration.main(["--experiment", str(experiment)])  # from the records alone, the same drawing
    assert (experiment / "calibration.svg").read_bytes() == svg


def test_no_records_is_an_error_that_names_the_folder(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path / "records")):
        calibration.main(["--experiment", str(tmp_path)])


def test_shipped_calibration_table_is_rebuilt_from_its_records():
    experiment = ROOT / "experiments" / "proxy_calibration"
    rows = summarize(calibration.load(experiment / "records"), OmegaConf.to_container(DEFAULT.scale, resolve=True))
    assert calibration.to_markdown(rows) == (experiment / "table.md").read_text()
    assert {r["candidate"] for r in rows if r["default"]} == {"full_frame_input_48"}  # the chosen
    shipped = {(r["candidate"], r["network"]) for r in rows}
    # every shipped candidate ran both ends, but for the Makefile's RESNET_ONLY (at 28 px ConvNeXt-T's last stage
    # sees no pixel; the warmup rule leaves its recipe as it is); the study is resumable, so candidates join as run
    assert "proxy" in {c for c, _ in shipped} and {c for c, _ in shipped} <= set(CANDIDATES)
    shown = subprocess.run(["make", "-s", "--eval", "show: ; @echo $(RESNET_ONLY)", "show"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    resnet_only = set(shown.strip().split(","))
    assert "input_28" in resnet_only and "warmup_rule" in resnet_only and resnet_only <= set(CANDIDATES)
    assert {(c, n) for c, _ in shipped for n in ENDPOINTS if c not in resnet_only or n == "baseline"} == shipped
    assert all(r["seeds"] == 3 and r["val_images"] == 10000 for r in rows)
