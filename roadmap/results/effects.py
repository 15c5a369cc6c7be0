"""The factorial study's analysis: each change's main effect and each alias chain's effect, with 95% intervals.

The records of `+ablation=factorial` are the rows of a two-level design (roadmap/config/factorial.py), each once per
seed. statsmodels' OLS fits a response on the design's ±1 columns, saturated: one term per main effect, one per alias
chain of two-factor interactions and one per remaining column (interactions of three or more changes), so that the
residual is exactly the pure error between seeds of the same row. With ±1 coding an effect (mean with the change minus
mean without it) is twice its coefficient. Where no row was run twice there is no pure error, and the intervals come
from Lenth's pseudo standard error of all the contrasts instead (Lenth 1989, df = contrasts / 3). A chain's effect is
the sum of its members' (with their signs): the design cannot tell them apart, so a chain is never reported as one
interaction.

The same fit on the cost side gives each change's average multiplicative effect on GFLOPs (exact: no noise) and on
training img/s (log scale, pure error between seeds).
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy.stats import t

from roadmap.config.factorial import Design, design_for

MAIN, CHAIN, HIGHER = "main", "chain", "higher-order"  # the kinds of a column of the saturated model


@dataclass(frozen=True)
class Term:
    """One column of the saturated model."""

    kind: str  # MAIN, CHAIN (two-factor interactions) or HIGHER (interactions of three or more changes only)
    name: str  # a main effect's delta; a chain's members `a:b = -c:d`; a higher-order column's shortest members
    column: np.ndarray  # ±1 per design row


@dataclass(frozen=True)
class Effect:
    term: Term
    effect: float  # mean response with the term at +1 minus at -1 (twice the OLS coefficient)
    ci_low: float
    ci_high: float

    @property
    def beyond_noise(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


@dataclass(frozen=True)
class Fit:
    effects: list[Effect]
    error: str  # where the intervals come from, for the tables: "pure error (32 df)" or "Lenth's PSE (10.3 df)"
    standard_error: float  # of one effect (the pure error's, or Lenth's PSE): the half-normal plot's slope


def _key(column: np.ndarray) -> bytes:
    """A column up to its sign: two effects alias when their columns are equal or opposite."""
    return (column * column[0]).astype(np.int8).tobytes()


def saturated_terms(design: Design) -> list[Term]:
    """Every column of the design but the mean's: main effects (each with any two-factor interaction aliased with it,
    below resolution IV), chains of two-factor interactions, then the columns left, named by their lowest-order
    members (at most three shown)."""
    terms = [Term(MAIN if chain.main else CHAIN, chain.name, chain.column) for chain in design.chains()]
    seen = {_key(term.column) for term in terms} | {_key(np.ones(design.rows))}
    members: dict[bytes, list[str]] = {}
    columns: dict[bytes, np.ndarray] = {}
    index = {factor: i for i, factor in enumerate(design.factors)}
    for size in range(3, len(design.factors) + 1):
        if len(seen) + len(members) == design.rows:
            break
        for interaction in itertools.combinations(design.factors, size):
            column = design.matrix[:, [index[f] for f in interaction]].prod(axis=1)
            key = _key(column)
            if key not in seen:
                members.setdefault(key, []).append(":".join(interaction))
                columns.setdefault(key, column)
    for key, names in members.items():
        terms.append(Term(HIGHER, " = ".join(names[:3]) + (" = ..." if len(names) > 3 else ""), columns[key]))
    return terms


def lenth_pse(contrasts: Sequence[float]) -> float:
    """Lenth's pseudo standard error: 1.5 x the median of the |contrasts| below 2.5 x s0, s0 = 1.5 x median |c|."""
    absolute = np.abs(np.asarray(contrasts, dtype=float))
    s0 = 1.5 * np.median(absolute)
    return float(1.5 * np.median(absolute[absolute < 2.5 * s0]))


def fit(design: Design, rows: Sequence[int], response: Sequence[float], noise: bool = True) -> Fit:
    """Effects of every term of the saturated model on `response` (one value per run, run `i` being design row
    `rows[i]`), with 95% intervals from the pure error, or Lenth's PSE where no row was run twice; `noise=False` for
    a response without noise (GFLOPs), whose effects are exact."""
    missing = sorted(set(range(design.rows)) - set(rows))
    if missing:
        raise ValueError(f"design rows {missing} have no completed run: the study is unfinished; run it to the end "
                         "(make factorial resumes it)")
    terms = saturated_terms(design)
    x = np.column_stack([np.ones(len(rows)), *(term.column[list(rows)] for term in terms)])
    y = np.asarray(response, dtype=float)
    with warnings.catch_warnings():  # a saturated fit without replicates has no residual: statsmodels warns
        warnings.simplefilter("ignore", RuntimeWarning)
        model = sm.OLS(y, x).fit()
    contrasts = 2 * model.params[1:]
    if not noise:
        return Fit([Effect(term, c, c, c) for term, c in zip(terms, contrasts, strict=True)], "exact", 0.0)
    if model.df_resid > 0:
        bounds = 2 * model.conf_int(0.05)[1:]
        effects = [Effect(term, c, lo, hi) for term, c, (lo, hi) in zip(terms, contrasts, bounds, strict=True)]
        return Fit(effects, f"pure error ({model.df_resid:.0f} df)", float(2 * np.median(model.bse[1:])))
    pse = lenth_pse(contrasts)
    df = len(contrasts) / 3
    half = float(t.ppf(0.975, df)) * pse
    effects = [Effect(term, c, c - half, c + half) for term, c in zip(terms, contrasts, strict=True)]
    return Fit(effects, f"Lenth's PSE ({df:.1f} df)", pse)


# --- records -> design rows ------------------------------------------------------------------------------------


def design_of(records: Sequence[dict]) -> tuple[Design, tuple[str, ...]]:
    """The design the records were run from, read from their configs (`ablation`), and the deltas held fixed."""
    settings = {json.dumps(record["config"].get("ablation"), sort_keys=True) for record in records}
    if len(settings) != 1:
        raise ValueError(f"the records come from {len(settings)} different factorial designs (config.ablation); "
                         "analyse each study's records apart")
    ablation = records[0]["config"].get("ablation")
    if not ablation:
        raise ValueError("the records carry no config.ablation: they are not a factorial study's (+ablation=factorial)")
    return design_for(ablation["factors"], ablation["resolution"]), tuple(ablation["fixed"])


def design_rows(records: Sequence[dict], design: Design, fixed: Sequence[str]) -> list[int]:
    """Each record's row of the design, found from its deltas."""
    index = {tuple(design.deltas(row, fixed)): row for row in range(design.rows)}
    rows = []
    for record in records:
        row = index.get(tuple(record["deltas"]))
        if row is None:
            raise ValueError(f"record {record['name']}-seed{record['seed']} applies {record['deltas']}, which is no "
                             "row of the design")
        rows.append(row)
    return rows


def did_not_train(record: dict) -> bool:
    """A run whose top-1 stayed under twice chance: its training diverged (loss stuck at ln(classes)), so its top-1
    measures no network's accuracy. It is left out of the accuracy fit and named, never silently averaged in."""
    classes = record["config"]["data"]["num_classes"]
    return record["top1"] < 2 * 100 / classes


@dataclass(frozen=True)
class Analysis:
    design: Design
    runs: int
    seeds: list[int]
    top1: Fit  # over the runs that trained
    images_per_second: Fit  # on log img/s, every run
    gflops: Fit  # on log GFLOPs, every run
    diverged: list[dict]  # the runs left out of the top-1 fit (did_not_train)


def analyse(records: Sequence[dict]) -> Analysis:
    """Top-1 (of the runs that trained), log training img/s and log GFLOPs, each fitted on the design's saturated
    model."""
    design, fixed = design_of(records)
    rows = design_rows(records, design, fixed)
    trained = [i for i, record in enumerate(records) if not did_not_train(record)]
    return Analysis(
        design=design, runs=len(records), seeds=sorted({r["seed"] for r in records}),
        top1=fit(design, [rows[i] for i in trained], [records[i]["top1"] for i in trained]),
        images_per_second=fit(design, rows, [math.log(r["train_images_per_second"]) for r in records]),
        gflops=fit(design, rows, [math.log(r["gflops"]) for r in records], noise=False),
        diverged=[r for r in records if did_not_train(r)],
    )
