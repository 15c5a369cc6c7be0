"""The factorial study: its design (resolution, balance, minimum aberration, refusals), its rows as networks, the
analysis of its records (planted effects recovered, intervals that cover), and a study that resumes."""

import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, finish, start
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from roadmap.config.ablation import run_name
from roadmap.config.composition import CONF_DIR, PRIMARY, compose
from roadmap.config.factorial import MINIMUM_ABERRATION, Design, design_for, factorial_rows
from roadmap.errors import ConfigError
from roadmap.results.effects import CHAIN, HIGHER, MAIN, analyse, fit, lenth_pse, saturated_terms
from roadmap.studies.factorial import fresh_seeds_markdown, reading, write_report
from roadmap.training.validation import CheckSweep

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = OmegaConf.load(CONF_DIR / "ablation" / "factorial.yaml").ablation
FACTORS = list(DEFAULT.factors)


def columns(design: Design, size: int) -> np.ndarray:
    """The product column of every set of `size` factors, one per row of the result."""
    return np.array([design.matrix[:, list(s)].prod(axis=1)
                     for s in itertools.combinations(range(len(design.factors)), size)])


@pytest.mark.parametrize(("factors", "resolution", "rows"), [(12, 3, 16), (12, 4, 32), (13, 4, 32), (6, 5, 32)])
def test_the_design_has_the_resolution_asked_for(factors, resolution, rows):
    design = design_for([f"f{i}" for i in range(factors)], resolution)
    assert design.rows == rows and design.resolution == resolution
    mains = columns(design, 1)
    assert np.all(mains.sum(axis=1) == 0)  # balanced: every change on in half the rows
    assert len({tuple(row) for row in design.matrix}) == rows  # rows distinct
    assert np.allclose(mains @ mains.T, rows * np.eye(factors))  # main effects orthogonal to each other
    overlap = np.abs(mains @ columns(design, 2).T).max()  # a main effect against every two-factor interaction
    assert overlap == (0 if resolution >= 4 else rows)  # at III some main effect is one; from IV none correlates


def _minimum_word_lengths(base: int, added: int, odd_only: bool) -> tuple[int, ...]:
    """The smallest word-length pattern (A3, A4, A5, A6) of any regular design with `base` base factors and `added`
    generated ones, by exhaustive search over the generators (within the odd-weight columns, where the
    minimum-aberration designs of 32 rows with 12-13 factors lie: they are projections of the even design)."""
    candidates = [c for c in range(1, 2**base) if bin(c).count("1") > 1 and (bin(c).count("1") % 2 or not odd_only)]
    best = None
    for chosen in itertools.combinations(candidates, added):
        lengths = [0] * (base + added + 1)
        for r in range(1, added + 1):
            for subset in itertools.combinations(chosen, r):
                product = 0
                for column in subset:
                    product ^= column
                lengths[r + bin(product).count("1")] += 1
        pattern = tuple(lengths[3:7])
        best = pattern if best is None else min(best, pattern)
    return best


@pytest.mark.parametrize(("factors", "resolution"), sorted(MINIMUM_ABERRATION))
def test_the_catalogue_designs_have_minimum_aberration(factors, resolution):
    design = design_for([f"f{i}" for i in range(factors)], resolution)
    base = int(np.log2(design.rows))
    assert design.word_length_pattern()[:4] == _minimum_word_lengths(base, factors - base, odd_only=resolution == 4)


def test_the_sweep_check_composes_checks_and_builds_every_row_named_as_a_free_combination(caplog):
    """`run.py -m +ablation=factorial` runs CheckSweep before its first job (here in-process, on Hydra's loader): it
    composes, checks and builds on the meta device each of the default design's 32 rows."""
    rows = factorial_rows(FACTORS, DEFAULT.resolution, list(DEFAULT.fixed))
    assert len(rows) == 32 and all(row[0] == "modern_recipe" for row in rows)  # the recipe held on, first
    assert len({run_name(row) for row in rows}) == 32
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = hydra_compose(PRIMARY, overrides=["+ablation=factorial", "seed=0"], return_hydra_config=True)
        with caplog.at_level(logging.INFO):
            CheckSweep().on_multirun_start(config)
    assert "checked the sweep's 32 jobs" in caplog.text
    one = compose([f"+delta=[{','.join(rows[5])}]", "study=factorial"])
    assert list(one.deltas) == rows[5] and one.name == run_name(rows[5])


def test_the_design_logs_the_alias_chains_it_will_estimate(caplog):
    from roadmap.config.factorial import _design

    _design.cache_clear()
    with caplog.at_level(logging.INFO, logger="roadmap.config.factorial"):
        factorial_rows(FACTORS, 4, ["modern_recipe"])
    assert "32 rows over 12 factors, resolution IV" in caplog.text
    assert "depthwise_conv:kernel_7" in caplog.text and "15 alias chains" in caplog.text


@pytest.mark.parametrize(("factors", "resolution", "fixed", "message"), [
    (["gelu", "no_such_delta"], 4, [], "unknown delta 'no_such_delta'"),
    (["kernel_5", "kernel_7", "gelu"], 4, [], "deltas kernel_5 and kernel_7 conflict"),
    (["gelu", "modern_recipe"], 4, ["modern_recipe"], "modern_recipe is both a factor and held fixed"),
    (["gelu", "gelu", "layer_norm"], 4, [], "lists gelu more than once"),
    (FACTORS, 6, [], "ablation.resolution=6 is invalid: it must be one of [3, 4, 5]"),
    (["gelu"], 4, [], "needs at least 2 factors"),
])
def test_a_bad_design_is_refused_before_anything_trains(factors, resolution, fixed, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        factorial_rows(factors, resolution, fixed)
    sweep = OmegaConf.create({"s": f"${{factorial:[{','.join(factors)}],{resolution},[{','.join(fixed)}]}}"})
    with pytest.raises(SystemExit, match="^Error: "):  # as `run.py -m` meets it: Hydra resolves the sweep first
        _ = sweep.s


# --- the analysis ---------------------------------------------------------------------------------------------


def planted(design: Design, truth: dict[str, float]) -> np.ndarray:
    """Noise-free responses with the given effects (a main effect by its factor, an interaction by `a:b`)."""
    index = {f: i for i, f in enumerate(design.factors)}
    y = np.full(design.rows, 80.0)
    for term, effect in truth.items():
        y += effect / 2 * design.matrix[:, [index[f] for f in term.split(":")]].prod(axis=1)
    return y


TRUTH = {"patchify_stem": 2.0, "layer_norm": -1.0, "depthwise_conv:kernel_7": 0.8}


def test_the_saturated_model_has_one_orthogonal_column_per_degree_of_freedom():
    design = design_for(FACTORS, 4)
    terms = saturated_terms(design)
    kinds = [term.kind for term in terms]
    assert (kinds.count(MAIN), kinds.count(CHAIN), kinds.count(HIGHER)) == (12, 15, 4)
    matrix = np.array([term.column for term in terms])
    assert np.allclose(matrix @ matrix.T, 32 * np.eye(31))
    chain = next(t for t in terms if "depthwise_conv:kernel_7" in t.name)
    assert chain.name.count(" = ") == 3  # the chain names all four interactions it holds, never one alone


def test_planted_effects_are_recovered_and_the_intervals_cover_at_the_nominal_rate():
    design = design_for(FACTORS, 4)
    terms = saturated_terms(design)
    truth = np.array([TRUTH.get(t.name, 0.0) if t.kind == MAIN else
                      (TRUTH["depthwise_conv:kernel_7"] if "depthwise_conv:kernel_7" in t.name else 0.0)
                      for t in terms])
    rows = list(range(32)) * 2  # two seeds per row
    rng = np.random.default_rng(0)
    covered = trials = 0
    for _ in range(200):
        result = fit(design, rows, planted(design, TRUTH)[rows] + rng.normal(0, 0.5, len(rows)))
        assert result.error == "pure error (32 df)"
        for effect, true in zip(result.effects, truth, strict=True):
            covered += effect.ci_low <= true <= effect.ci_high
            trials += 1
    assert 0.93 <= covered / trials <= 0.97, covered / trials
    by_name = {e.term.name: e for e in result.effects}
    assert by_name["patchify_stem"].beyond_noise and by_name["layer_norm"].effect < 0
    # Without a replicate there is no pure error: Lenth's pseudo standard error, over the 31 contrasts.
    single = fit(design, list(range(32)), planted(design, TRUTH) + rng.normal(0, 0.5, 32))
    assert single.error == "Lenth's PSE (10.3 df)"
    assert {e.term.name for e in single.effects if e.beyond_noise and e.term.kind == MAIN} == {"patchify_stem",
                                                                                                "layer_norm"}


def test_lenth_pse_ignores_the_active_contrasts():
    assert lenth_pse([0.1, -0.1, 0.1, -0.1, 0.1, 5.0, -4.0]) == pytest.approx(0.15)


def test_an_unfinished_study_is_refused_naming_its_missing_rows():
    design = design_for(FACTORS, 4)
    with pytest.raises(ValueError, match=r"design rows \[31\] have no completed run.*make factorial"):
        fit(design, list(range(31)), np.zeros(31))


def test_the_three_views_agree_or_depend_on_context():
    assert reading([(1.0, 0.5, 1.5), (0.4, 0.1, 0.7), (2.0, 1.8, 2.2)]) == "gain in every view"
    assert reading([(-1.0, -1.5, -0.5), (0.1, -0.2, 0.4)]) == "depends on context"
    assert reading([(0.1, -0.2, 0.4), (None, None, None), (0.0, -0.1, 0.1)]) == "no effect in any view"


def _records(design: Design, fixed: list[str], seeds: tuple[int, ...], rng) -> list[dict]:
    template = json.loads(next((ROOT / "experiments" / "leave_one_out" / "records").glob("*.json")).read_text())
    template["config"]["ablation"] = {"factors": list(design.factors), "resolution": 4, "fixed": fixed}
    y = planted(design, TRUTH)
    records = []
    for seed in seeds:
        for row in range(design.rows):
            deltas = design.deltas(row, fixed)
            width = design.matrix[row, design.factors.index("width_96")]
            records.append({**template, "deltas": deltas, "name": run_name(deltas), "seed": seed, "step": "baseline",
                            "top1": y[row] + rng.normal(0, 0.3), "gflops": 0.004 * np.exp(0.4 * width),
                            "train_images_per_second": 1000 * np.exp(-0.3 * width + rng.normal(0, 0.02))})
    return records


def test_the_report_writes_effects_chains_costs_and_views_from_records(tmp_path):
    design = design_for(FACTORS, 4)
    (tmp_path / "records").mkdir()
    for record in _records(design, ["modern_recipe"], (0, 1), np.random.default_rng(1)):
        (tmp_path / "records" / f"{record['name']}-seed{record['seed']}.json").write_text(json.dumps(record))
    analysis = write_report(tmp_path, ROOT / "experiments" / "fashion_mnist_proxy" / "records",
                            ROOT / "experiments" / "leave_one_out" / "records")
    assert analysis.runs == 64 and analysis.seeds == [0, 1]
    effects = (tmp_path / "effects.csv").read_text().splitlines()
    assert effects[0].startswith("delta,effect,ci_low,ci_high") and len(effects) == 13
    patchify = next(line.split(",") for line in effects if line.startswith("patchify_stem,"))
    assert float(patchify[2]) < 2.0 < float(patchify[3])
    chains = (tmp_path / "interactions.csv").read_text().splitlines()
    assert chains[0].startswith("chain,effect,ci_low,ci_high") and len(chains) == 16
    costs = {line.split(",")[0]: line.split(",") for line in (tmp_path / "cost_effects.csv").read_text().splitlines()}
    assert float(costs["width_96"][1]) == pytest.approx(np.exp(0.8))  # GFLOPs x2.23: exact
    assert float(costs["width_96"][3]) < np.exp(-0.6) < float(costs["width_96"][4])  # img/s x0.55, in its CI
    views = (tmp_path / "views.csv").read_text()
    assert "separate_downsampling" in views and (tmp_path / "views.png").is_file()
    assert (tmp_path / "effects.png").is_file() and "Three views" in (tmp_path / "table.md").read_text()


def test_a_run_that_did_not_train_is_left_out_of_the_accuracy_fit_and_named(tmp_path):
    design = design_for(FACTORS, 4)
    records = _records(design, ["modern_recipe"], (0, 1), np.random.default_rng(2))
    diverged = {**records[40], "top1": 10.0}  # its loss stuck at ln(10): chance on 10 classes
    analysis = analyse([*records[:40], diverged, *records[41:]])
    assert analysis.diverged == [diverged] and analysis.top1.error == "pure error (31 df)"
    assert analysis.images_per_second.error == "pure error (32 df)"  # its cost is still measured
    clean = {e.term.name: e.effect for e in analyse(records).top1.effects}
    kept = {e.term.name: e.effect for e in analysis.top1.effects}
    assert kept["patchify_stem"] == pytest.approx(clean["patchify_stem"], abs=0.2)  # not dragged by 75 points


def test_records_of_another_design_are_refused():
    design = design_for(FACTORS, 4)
    records = _records(design, ["modern_recipe"], (0,), np.random.default_rng(0))
    records[3] = {**records[3], "deltas": ["modern_recipe", "kernel_5"]}
    with pytest.raises(ValueError, match="which is no row of the design"):
        analyse(records)


# --- the study ------------------------------------------------------------------------------------------------


def test_an_interrupted_factorial_study_resumes_where_it_stopped(tmp_path):
    """Killed after two of its four jobs, the same command finishes the other two and leaves the first two."""
    args = ["+ablation=factorial", "ablation.factors=[gelu,layer_norm,fewer_norms]", "ablation.resolution=3",
            "seed=0", *TINY, "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
            f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${name}-seed${seed}", "-m"]
    first = start(args, tmp_path / "first.log")
    while len(list(tmp_path.glob("*/result.json"))) < 2 and first.exitcode is None:
        time.sleep(0.01)
    first.kill()
    first.join()
    done = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/result.json")}
    assert 2 <= len(done) < 4
    output = finish(start(args, tmp_path / "again.log"), tmp_path / "again.log")
    assert output.count("is already completed") == len(done)
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*/result.json")]
    assert len(records) == 4 and {r["study"] for r in records} == {"factorial"}
    assert {p: p.stat().st_mtime_ns for p in done} == done  # the finished jobs were skipped, not retrained


def test_the_best_row_on_fresh_seeds_keeps_the_share_of_its_lead_that_was_not_luck():
    """Rows a, b, c at 80, 82 and 87 on two seeds (average 83): c leads by 4. Fresh seeds of c read 84 and 86: a lead
    of 2 above that average, half of it."""
    def row(name, seed, top1):
        return {"name": name, "seed": seed, "top1": top1, "config": {"data": {"num_classes": 10}}}

    design = [row(n, s, t) for n, t in (("a", 80.0), ("b", 82.0), ("c", 87.0)) for s in (0, 1)]
    design.append(row("b", 2, 10.0))  # a run that did not train (chance): left out, as in the fit
    text = fresh_seeds_markdown(design, [row("c", 2, 84.0), row("c", 3, 86.0)])
    assert "ranked 1 of 3 rows" in text and "+4.00 above the design's average row (83.00)" in text
    assert "85.00 [" in text and "+2.00 above that average: 50% of its lead survives" in text
