"""The factorial study: each roadmap change's effect averaged over the others, from a two-level fractional factorial.

A path Δ says what a change does in one context (the steps before it), leave-one-out in another (all the others
on). A two-level fractional factorial design switches every change on in half of its rows and off in the other
half, balanced against every other change, so a change's main effect (mean top-1 with it minus mean without it)
is averaged over all the others. At resolution IV no main effect is aliased with a two-factor interaction; the
two-factor interactions fall into alias chains, each estimated as one sum and reported with all its members.

This module builds the design (pyDOE's `fracfact`, from minimum-aberration generators), computes its resolution,
word-length pattern and alias chains from the design matrix itself, and turns its rows into lists of deltas that
`+delta=[...]` applies to the plain ResNet-50 (conf/ablation/factorial.yaml). The analysis of the records is in
roadmap/results/effects.py.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from omegaconf import OmegaConf
from pydoe import fracfact, fracfact_by_res

from roadmap.config.ablation import check_combination, in_order, settings, sweep
from roadmap.errors import ConfigError

log = logging.getLogger(__name__)

# Minimum-aberration generators of regular 2^(k-p) designs, keyed by (factors, resolution), in pyDOE's notation:
# the base factors are single letters, the others their products. They are those of the published catalogues of
# minimum-aberration designs (Chen, Sun & Wu 1993; Montgomery, "Design and Analysis of Experiments", appendix
# table of 2^(k-p) designs); tests/test_factorial.py checks that no design of the same size has a shorter
# word-length pattern. Other sizes fall back to pyDOE's `fracfact_by_res`, whose resolution is checked here.
MINIMUM_ABERRATION = {
    (12, 3): "a b c d ab ac bc ad bd acd bcd abcd",  # 16 rows, 2^(12-8)
    (12, 4): "a b c d e abc abd acd bcd abe ace ade",  # 32 rows, 2^(12-7)
    (13, 3): "a b c d ab ac bc ad bd cd acd bcd abcd",  # 16 rows, 2^(13-9)
    (13, 4): "a b c d e abc abd acd bcd abe ace bce ade",  # 32 rows, 2^(13-8)
}
RESOLUTIONS = (3, 4, 5)
ROMAN = {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII", math.inf: "full factorial"}


@dataclass(frozen=True)
class Design:
    """A two-level design over named factors: `matrix[row, j]` is +1 when factor j's delta is applied in that row."""

    factors: tuple[str, ...]
    matrix: np.ndarray  # rows x factors, entries -1.0 / +1.0
    generators: str  # pyDOE's generator string the matrix was built from

    @property
    def rows(self) -> int:
        return len(self.matrix)

    def deltas(self, row: int, fixed: Sequence[str] = ()) -> list[str]:
        """The deltas one row applies, with the `fixed` ones held on in every row, in roadmap order."""
        return in_order([*fixed, *(f for f, level in zip(self.factors, self.matrix[row], strict=True) if level > 0)])

    @cached_property
    def words(self) -> list[frozenset[str]]:
        """The defining relation: every set of factors whose product column is constant (+1 or -1)."""
        return defining_words(self.factors, self.matrix)

    @property
    def resolution(self) -> float:
        """The length of the shortest word; a full factorial has none: every effect is clear (infinite)."""
        return min((len(w) for w in self.words), default=math.inf)

    def word_length_pattern(self) -> tuple[int, ...]:
        """A3, A4, ...: how many words of each length. Minimum aberration minimises it in this order."""
        lengths = [len(w) for w in self.words]
        return tuple(lengths.count(n) for n in range(3, len(self.factors) + 1))

    def chains(self) -> list[AliasChain]:
        """Every main effect and two-factor interaction, grouped by the design column that estimates them (equal up
        to sign); higher-order interactions are taken as negligible and left out, as usual."""
        return alias_chains(self.factors, self.matrix)


@dataclass(frozen=True)
class AliasChain:
    """Effects estimated by one column of the design: their sum (with signs) is what the data can tell."""

    members: tuple[tuple[str, ...], ...]  # each a main effect (one factor) or a 2FI (two), main effects first
    signs: tuple[int, ...]  # each member's column is sign x the first member's
    column: np.ndarray

    @property
    def main(self) -> str | None:
        """The factor whose main effect the chain holds (at resolution IV and over, a chain holds at most one)."""
        return next((m[0] for m in self.members if len(m) == 1), None)

    @property
    def name(self) -> str:
        """``a:b = -c:d = e:f``: every member, the first as estimated, the others with their sign against it."""
        parts = [":".join(self.members[0])]
        parts += [f"{'-' if s < 0 else ''}{':'.join(m)}" for m, s in zip(self.members[1:], self.signs[1:], strict=True)]
        return " = ".join(parts)


def defining_words(factors: Sequence[str], matrix: np.ndarray) -> list[frozenset[str]]:
    """The words of a regular two-level design, read from its matrix: the factor sets whose product is constant."""
    words = []
    for size in range(1, len(factors) + 1):
        for subset in itertools.combinations(range(len(factors)), size):
            product = matrix[:, subset].prod(axis=1)
            if np.all(product == product[0]):
                words.append(frozenset(factors[i] for i in subset))
    return words


def alias_chains(factors: Sequence[str], matrix: np.ndarray) -> list[AliasChain]:
    """Main effects and two-factor interactions grouped by their column, up to sign, in the order of the first
    member (main effects in factor order, then interactions)."""
    terms = [(f,) for f in factors] + list(itertools.combinations(factors, 2))
    index = {f: i for i, f in enumerate(factors)}
    groups: dict[bytes, list[tuple[tuple[str, ...], int, np.ndarray]]] = {}
    for term in terms:
        column = matrix[:, [index[f] for f in term]].prod(axis=1)
        sign = 1 if column[0] > 0 else -1
        groups.setdefault((sign * column).astype(np.int8).tobytes(), []).append((term, sign, column))
    chains = []
    for members in groups.values():
        first_sign = members[0][1]
        chains.append(AliasChain(members=tuple(m[0] for m in members),
                                 signs=tuple(s * first_sign for _, s, _ in members), column=members[0][2]))
    return chains


def design_for(factors: Sequence[str], resolution: int) -> Design:
    """The design over `factors` at `resolution` with the fewest rows: minimum aberration where the catalogue has
    it, otherwise pyDOE's. Refuses a repeated factor, an unknown resolution, or a design below the one asked for."""
    factors = tuple(factors)
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"ablation.resolution={resolution!r} is invalid: it must be one of {list(RESOLUTIONS)} "
                          "(III: main effects aliased with interactions; IV: main effects clear; V: interactions "
                          "clear too).")
    repeated = sorted({f for f in factors if factors.count(f) > 1})
    if repeated:
        raise ConfigError(f"ablation.factors lists {', '.join(repeated)} more than once; list each delta once.")
    if len(factors) < 2:
        raise ConfigError(f"ablation.factors={list(factors)} is invalid: a factorial study needs at least 2 factors.")
    if len(factors) > 26:
        raise ConfigError(f"ablation.factors has {len(factors)} factors; pyDOE names factors by letter, so at most "
                          "26.")
    generators = MINIMUM_ABERRATION.get((len(factors), resolution))
    if generators is not None:
        matrix = fracfact(generators)
    else:
        matrix = fracfact_by_res(len(factors), resolution)
        generators = f"pyDOE fracfact_by_res({len(factors)}, {resolution})"
    design = Design(factors, matrix.astype(float), generators)
    if design.resolution < resolution:
        raise ConfigError(f"the {design.rows}-row design over {len(factors)} factors has resolution "
                          f"{ROMAN.get(design.resolution, design.resolution)}, below the "
                          f"{ROMAN[resolution]} asked for (ablation.resolution={resolution}); ask for less, or fewer "
                          "factors.")
    return design


def check_factors(factors: Sequence[str], fixed: Sequence[str]) -> None:
    """Each factor must be a delta; no two may set the same argument unless the roadmap builds one on the other
    (every row applies some pair of them together); a fixed delta is no factor."""
    for name in [*factors, *fixed]:
        settings(name)  # raises, naming the deltas, for a name that is not one
    both = sorted(set(factors) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)} is both a factor and held fixed (ablation.fixed); remove it from one "
                          "of ablation.factors and ablation.fixed.")
    try:
        check_combination(in_order([*fixed, *factors]))
    except ConfigError as error:
        raise ConfigError(f"ablation.factors: {error} A factor must be able to switch on and off alone.") from None


@cache
def _design(factors: tuple[str, ...], resolution: int, fixed: tuple[str, ...]) -> Design:
    check_factors(factors, fixed)
    design = design_for(factors, resolution)
    log.info("factorial design: %d rows over %d factors, resolution %s (%s); %d alias chains of two-factor "
             "interactions:\n%s", design.rows, len(factors), ROMAN.get(design.resolution, design.resolution),
             design.generators, sum(c.main is None for c in design.chains()),
             "\n".join(f"  {c.name}" for c in design.chains() if c.main is None))
    return design


def factorial_rows(factors: Sequence[str], resolution: int = 4, fixed: Sequence[str] = ()) -> list[list[str]]:
    """The delta lists of the design's rows, for a Hydra sweep over `+delta`."""
    design = _design(tuple(factors), int(resolution), tuple(fixed))
    return [design.deltas(row, fixed) for row in range(design.rows)]


def _sweep(factors: Sequence[str], resolution: int, fixed: Sequence[str]) -> str:
    try:
        return sweep(factorial_rows(list(factors), resolution, list(fixed)))
    except ConfigError as error:
        # Hydra resolves the sweeper's params as it builds the sweeper, before any callback: an exception there
        # would reach the user buried in a traceback, so the refusal ends the run as run.py ends every other.
        raise SystemExit(f"Error: {error}") from None


def register_resolver() -> None:
    """``${factorial:${ablation.factors},${ablation.resolution},${ablation.fixed}}`` for conf/ablation/factorial.yaml:
    the design's rows as a Hydra sweep over `+delta`."""
    if not OmegaConf.has_resolver("factorial"):
        OmegaConf.register_new_resolver("factorial", _sweep)
