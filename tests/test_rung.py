"""The second rung: its scale, its calibration candidates, the gentler (square-root) regularization rule, and the
table across rungs, on hand-made records."""

import json
import math
import re
import statistics

import pytest
from omegaconf import OmegaConf
from scipy.stats import t

from roadmap.config.composition import CONF_DIR, compose
from roadmap.errors import ConfigError
from roadmap.model.network import stage_sizes
from roadmap.steps import ROADMAP, STEPS, chain
from roadmap.studies import ladder, rungs
from roadmap.training.budget import Budget, check_rules, fit_recipe

CANDIDATES = sorted(path.stem for path in (CONF_DIR / "calibration" / "gpu_rung").glob("*.yaml"))


def modern_at(epochs: int, rule) -> dict:
    cfg = compose(["+step=modern_recipe"])
    budget = Budget.of(cfg.recipe, epochs, 468)
    fitted, _ = fit_recipe(cfg.recipe, budget, {"regularization": rule}, 1.0)
    return OmegaConf.to_container(fitted)["augment"] | {"stochastic_depth": fitted.stochastic_depth}


def test_the_square_root_rule_weakens_the_regularisers_less():
    s = math.sqrt(10 / 300)
    gentle, linear = modern_at(10, "sqrt"), modern_at(10, True)
    assert linear == modern_at(10, "linear")  # true is today's linear rule
    assert gentle["mixup_prob"] == pytest.approx(s) and linear["mixup_prob"] == pytest.approx(10 / 300)
    assert gentle["random_erasing"] == pytest.approx(0.25 * s) and gentle["label_smoothing"] == pytest.approx(0.1 * s)
    assert gentle["randaugment"] == f"rand-m9-mstd0.5-inc1-p{0.5 * s:.6g}"
    assert gentle["train_crop_scale"] == pytest.approx([1 - s * 0.92, 1.0])  # towards the whole image (ratio 1.0)
    assert gentle["train_crop_ratio"] == pytest.approx([0.75 ** s, (4 / 3) ** s], rel=1e-6)
    assert gentle["stochastic_depth"] == pytest.approx(0.1 * s)
    with pytest.raises(ConfigError, match="scale.budget.regularization='cubic'.*true or false, or linear, or sqrt"):
        check_rules({"regularization": "cubic"})
    with pytest.raises(ConfigError, match="scale.budget.ema='sqrt'.*true or false\\."):
        check_rules({"ema": "sqrt"})


def test_the_gpu_rung_sees_the_papers_later_stages_at_a_quarter_width():
    cfg = compose(["scale=gpu_rung", "+step=separate_downsampling"])
    assert (cfg.scale.input_size, cfg.scale.width_multiplier, cfg.scale.epochs) == (112, 0.25, 10)
    model = cfg.model
    assert stage_sizes(112, model.stem, model.patch_size, model.depths, model.downsampling) == [28, 14, 7, 3]
    assert cfg.data._target_.endswith("FashionMNISTData")  # the default data set, not one the rung names
    rung = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "scale" / "gpu_rung.yaml"))
    assert rung["eval_resize_ratio"] is None and rung["train_subset"] is None  # nothing of Fashion-MNIST's own


@pytest.mark.parametrize("name", CANDIDATES)
def test_every_rung_candidate_is_the_centre_with_its_change(name):
    cfg = compose([f"+calibration/gpu_rung={name}", "+step=separate_downsampling"])
    centre = OmegaConf.to_container(compose(["scale=gpu_rung"]).scale, resolve=True)
    scale = OmegaConf.to_container(cfg.scale, resolve=True)
    changed = {key for key in scale if scale[key] != centre[key]}
    expected = {"centre": set(), "sqrt_rule": {"budget"}, "warmup_rule": {"budget"},
                "full_frame": {"eval_resize_ratio"}, "epochs_5": {"epochs"}, "epochs_20": {"epochs"},
                "epochs_20_sqrt_rule": {"epochs", "budget"}, "batch_256": {"batch_size"}}
    assert changed == expected[name]
    assert cfg.calibration == ("gpu_rung" if name == "centre" else f"gpu_rung_{name}")
    check_rules(scale["budget"])


# --- Across rungs -----------------------------------------------------------------------------------------


def record(step: str, seed: int, top1: float, scale: str, input_size: int) -> dict:
    return {"status": "completed", "step": step, "name": step, "deltas": chain(step), "seed": seed,
            "regime": "resnet50", "scale": scale, "data": "FashionMNISTData", "input_size": input_size, "top1": top1,
            "top5": 99.0, "params": 1000, "gflops": 0.1, "gflops_224": 1.0, "train_images_per_second": 1000.0,
            "peak_memory_mb": 100.0, "device": "cpu"}


def rung_records(scale: str, input_size: int, delta_of, noise: tuple[float, ...]) -> list[dict]:
    """Three seeds of every step, each step `delta_of(step)` above its parent plus seed noise."""
    records = []
    for seed, jitter in enumerate(noise):
        top1 = {}
        for step in ROADMAP:
            top1[step.name] = 80.0 if step.parent is None else top1[step.parent] + delta_of(step.name) + jitter * (
                1 + len(step.name) % 3)
            records.append(record(step.name, seed, top1[step.name], scale, input_size))
    return records


def paper_delta(step: str) -> float:
    parent = STEPS[step].parent
    return STEPS[step].paper["resnet50"].top1 - STEPS[parent].paper["resnet50"].top1


def test_the_table_across_rungs_on_hand_made_records(tmp_path):
    same = rung_records("proxy", 48, paper_delta, (0.0, 0.1, -0.1))  # the paper's Δ, closely
    flipped = rung_records("gpu_rung", 112, lambda s: -paper_delta(s), (0.0, 0.05, -0.05))  # its mirror image
    for folder, records in (("cpu", same), ("gpu", flipped)):
        for r in records:
            path = tmp_path / folder / "records" / f"{r['step']}-seed{r['seed']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
    rungs.main(["--rung", f"CPU 48 px={tmp_path / 'cpu'}", "--rung", f"GPU rung={tmp_path / 'gpu' / 'records'}",
                "--out", str(tmp_path / "out")])
    table = (tmp_path / "out" / "rungs.md").read_text()
    rows = {row["step"]: row for row in rungs.cross_rung_rows([rungs.Rung.of("CPU 48 px", same),
                                                                rungs.Rung.of("GPU rung", flipped)])}
    assert len(rows) == len(ROADMAP) - 1  # every step but the baseline
    stem = rows["patchify_stem"]  # +0.15 in the paper; seed jitter x (1 + 13 % 3 = 2): 0, +0.2, -0.2
    diffs = [0.15 + 0.0, 0.15 + 0.2, 0.15 - 0.2]
    half = t.ppf(0.975, 2) * statistics.stdev(diffs) / math.sqrt(3)
    assert stem["paper_delta"] == 0.15
    assert stem["CPU 48 px"] == pytest.approx(0.15)
    assert (stem["CPU 48 px ci_low"], stem["CPU 48 px ci_high"]) == pytest.approx((0.15 - half, 0.15 + half))
    recipe = rows["modern_recipe"]  # +2.69 in the paper: a gain beyond noise at the CPU rung, a loss at the other
    assert recipe["reading"] == "moves: gain at CPU 48 px, loss at GPU rung"
    assert rows["stage_ratio"]["reading"].startswith("moves")
    assert rungs.rank_correlation(list(rows.values()), "CPU 48 px")[0] == pytest.approx(1.0)
    assert rungs.rank_correlation(list(rows.values()), "GPU rung") == (pytest.approx(-1.0), 16)
    assert "- CPU 48 px: +1.00 over 16 steps" in table and "- GPU rung: -1.00 over 16 steps" in table
    assert "| modern_recipe | +2.69 | +2.69 [" in table
    holds = rungs.cross_rung_rows([rungs.Rung.of("a", same), rungs.Rung.of("b", same)])
    assert {row["reading"] for row in holds} <= {"holds: gain", "holds: loss", "holds: within noise"}
    assert "against" not in table  # the GPU rung is another setting: its means are not the CPU's to match


def test_a_rung_made_another_way_agrees_step_by_step_within_its_bound():
    cpu = rung_records("proxy", 48, paper_delta, (0.0, 0.1, -0.1))
    gpu = [dict(r, top1=r["top1"] + (1.5 if r["step"] == "baseline" else 0.5), device="cuda") for r in cpu]
    rows = {row["step"]: row for row in rungs.agreement(rungs.Rung.of("CPU", cpu), rungs.Rung.of("GPU", gpu))}
    assert len(rows) == 17 and rows["gelu"]["difference"] == pytest.approx(0.5)
    assert [step for step, row in rows.items() if not row["agrees"]] == ["baseline"]  # 1.5 > max(1.0, 2 x 0)
    table = rungs.to_markdown([rungs.Rung.of("CPU", cpu), rungs.Rung.of("GPU", gpu)],
                              rungs.cross_rung_rows([rungs.Rung.of("CPU", cpu), rungs.Rung.of("GPU", gpu)]))
    assert "## GPU against CPU" in table and "16 of 17 steps agree" in table


# --- The ladder: leave-one-out rows, pooled error, one rung per length ---------------------------------------


def ladder_records(scale: str, epochs: int, rule, gains: dict[str, float], seeds=(0, 1)) -> list[dict]:
    """ConvNeXt-T and each change of the ladder reverted (the recipe: ResNet-50 under both recipes), each change
    worth `gains[change]` with all else in place, seed noise +-0.1 x (seed + 1) on the reverted network only."""
    records = []
    for seed in seeds:
        base = record("separate_downsampling", seed, 85.0, scale, 48)
        records.append(base)
        for comparison in rungs.revert_comparisons(ladder.CHANGES):
            if comparison.network == "baseline" or comparison.without == "baseline":
                records += [dict(record("baseline", seed, 80.0, scale, 48)),
                            dict(record("modern_recipe", seed, 80.0 + gains[comparison.change], scale, 48))]
                continue
            top1 = 85.0 - gains[comparison.change] + (0.1 if seed % 2 else -0.1) * (seed + 1)
            records.append(dict(record("baseline", seed, top1, scale, 48), name=comparison.without, step="baseline"))
    for r in records:
        r.update(epochs=epochs, config={"scale": {"budget": {"regularization": rule}}})
    return records


def test_ladder_rows_revert_each_change_of_convnext_t_and_pool_the_seed_noise():
    rows = {c.change: c for c in rungs.revert_comparisons(["modern_recipe", "patchify_stem", "kernel_7"])}
    assert rows["patchify_stem"] == rungs.Comparison("patchify_stem", "separate_downsampling",
                                                     "separate_downsampling@-patchify_stem", 0.15)
    assert rows["kernel_7"].paper_delta == pytest.approx(80.57 - 79.92)  # the path's Δ: from move_up_dwconv
    assert (rows["modern_recipe"].network, rows["modern_recipe"].without) == ("modern_recipe", "baseline")
    gains = dict.fromkeys(ladder.CHANGES, 1.0)
    rung = rungs.Rung.of("3 passes", ladder_records("proxy_3", 3, "sqrt", gains))
    comparisons = rungs.revert_comparisons(ladder.CHANGES)
    # each reverted network's two seeds are 85 - 1 - 0.1 and 85 - 1 + 0.2: Δ 1.1 and 0.8, sd 0.212; the recipe's 0
    diffs = [rung.differences(c) for c in comparisons]
    assert diffs[1] == pytest.approx([1.1, 0.8])
    sd, df = rung.pooled_sd(comparisons)
    assert df == len(comparisons)  # one degree of freedom from each row's two seeds
    reverted = len(comparisons) - 1
    assert sd == pytest.approx(math.sqrt(reverted * statistics.variance([1.1, 0.8]) / df))
    mean, low, high = rung.delta(comparisons[1], (sd, df))
    assert mean == pytest.approx(0.95) and high - mean == pytest.approx(t.ppf(0.975, df) * sd / math.sqrt(2))
    own = rung.delta(comparisons[1])  # over its own two seeds: t with 1 df, far wider
    assert own[2] - own[0] > 3 * (high - mean)
    # pooled across the reverts alone, the recipe's row (ResNet-50, noiseless here) keeping its own seeds
    rows = rungs.cross_rung_rows([rung], comparisons, pooled=comparisons[1:])
    assert rows[0]["3 passes ci_low"] == pytest.approx(rows[0]["3 passes"]) == pytest.approx(1.0)
    half = t.ppf(0.975, reverted) * statistics.stdev([1.1, 0.8]) / math.sqrt(2)
    assert rows[1]["3 passes ci_high"] - rows[1]["3 passes"] == pytest.approx(half)


def test_the_ladder_report_reads_one_rung_per_length_and_rule(tmp_path):
    gains = {"modern_recipe": 2.0, "patchify_stem": -2.0, "layer_norm": -1.0, "fewer_norms": 0.0, "kernel_7": 1.0,
             "depthwise_conv": 0.5}
    later = {**gains, "patchify_stem": 2.0}  # the stem's verdict flips with length
    for folder, epochs, rule, worth in (("proxy", 1, True, gains), ("proxy_9_passes_sqrt", 9, "sqrt", later),
                                        ("proxy_3_passes_linear", 3, "linear", gains),
                                        ("proxy_3_passes_sqrt", 3, "sqrt", later)):
        for r in ladder_records(folder, epochs, rule, worth):
            path = tmp_path / "records" / folder / f"{r['name']}-seed{r['seed']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
    ladder.main(["--experiment", str(tmp_path)])
    table = (tmp_path / "table.md").read_text()
    assert table.index("| 1 pass, linear |") < table.index("| 3 passes, linear |") < table.index(
        "| 3 passes, sqrt |") < table.index("| 9 passes, sqrt |")
    stem = next(line for line in table.splitlines() if line.startswith("| patchify_stem |"))
    assert "moves: loss at 1 pass, linear, loss at 3 passes, linear, gain at 3 passes, sqrt" in stem
    assert "| modern_recipe | +2.69 | +2.00 [" in table
    assert (tmp_path / "ladder.png").stat().st_size > 0 and (tmp_path / "ladder.svg").is_file()


def test_every_number_the_ladder_reading_quotes_is_in_its_records_or_tables():
    """The reading is written by hand: each number in it is a Δ or interval of its table, a network's mean or seed
    in its records, or the other studies' readings it cites (the factorial's and the roadmap's tables)."""
    experiment = CONF_DIR.parent / "experiments" / "ladder"
    readme = (experiment / "README.md").read_text()
    reading = readme[readme.index("## The reading"):readme.index("## Table")]
    number = re.compile(r"\d+\.\d\d")
    known = set(number.findall((experiment / "table.md").read_text()))
    for cited in ("factorial", "fashion_mnist_proxy"):
        known |= set(number.findall((experiment.parent / cited / "table.md").read_text()))
    for rung in (experiment / "records").iterdir():
        runs: dict[str, list[float]] = {}
        for path in rung.glob("*.json"):
            record = json.loads(path.read_text())
            runs.setdefault(record["name"], []).append(record["top1"])
        for values in runs.values():
            known |= {f"{v:.2f}" for v in [*values, statistics.fmean(values)]}
    quoted = set(number.findall(reading))
    assert quoted and quoted <= known, sorted(quoted - known)
