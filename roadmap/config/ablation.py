"""Beyond the paper's single path: any set of deltas, named by what it applies, checked for conflicts.

A run applies a list of deltas (``conf/delta/``): a roadmap step's chain, a step plus or minus some
deltas, or any free combination (``+delta=[patchify_stem,gelu]``). This module

- names such a list after the nearest roadmap step, ``-x`` for each of that step's deltas left out and
  ``+y`` for each added one (``separate_downsampling@-gelu``, ``baseline@+patchify_stem+gelu``), so that
  one network always gets one name, whatever order its deltas were listed in;
- refuses a list in which two deltas set the same argument in a way the roadmap never does (two kernel
  sizes, or ``width_96`` before ``stage_ratio``, which would silently undo it);
- builds the leave-one-out study: the end of the roadmap with each of its deltas reverted in turn;
- turns ``+step=S revert=[a,b]`` into ``+delta=[S's chain without a and b]`` before Hydra composes, since a
  step's defaults list can add deltas but never remove one.
"""

import itertools
import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from roadmap.errors import ConfigError
from roadmap.steps import ORDER, ROADMAP, STEPS, chain, roadmap_order

DELTA_DIR = Path(__file__).resolve().parents[2] / "conf" / "delta"
FINAL_STEP = ROADMAP[-1].name  # ConvNeXt-T in the ResNet-50 regime (ConvNeXt-B in the ResNet-200 one)


def in_order(deltas: Iterable[str]) -> list[str]:
    """Roadmap order; deltas that are not roadmap steps (e.g. pointwise_linear) after them, by name."""
    return sorted(deltas, key=lambda d: (roadmap_order(d), d))


def run_name(deltas: Iterable[str], model: str | None = None) -> str:
    """The name of the network a list of deltas builds, relative to the roadmap step nearest to it; for a named
    model (`model=convnext_s`), that model's name with the deltas added to it.

    The nearest step has the fewest deltas to add or leave out (ties: fewer left out, then the later step). A
    step mark (`@`) ends the base, which stands for its whole chain: `depthwise_conv@+move_up_dwconv` is the step
    depthwise_conv (the recipe, the stage ratio, the stem and the depthwise conv) plus the move up, where a step and
    a delta share a word.
    """
    applied = set(deltas)
    if model is not None:
        return _marked(model, "".join(f"+{d}" for d in in_order(applied)))

    def distance(step: str) -> tuple[int, int, int]:
        steps = set(chain(step))
        return len(steps ^ applied), len(steps - applied), -ORDER[step]

    nearest = min(STEPS, key=distance)
    left_out = [d for d in chain(nearest) if d not in applied]
    added = in_order(applied - set(chain(nearest)))
    return _marked(nearest, "".join(f"-{d}" for d in left_out) + "".join(f"+{d}" for d in added))


STEP_MARK = "@"  # between a name's base and its changes: safe in folder names, shell words, overrides and wandb keys


def _marked(base: str, changes: str) -> str:
    return f"{base}{STEP_MARK}{changes}" if changes else base


@cache
def settings(delta: str) -> frozenset[str]:
    """The config keys a delta sets: ``model.<argument>`` and, for a config group it switches, the group."""
    path = DELTA_DIR / f"{delta}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown delta {delta!r}; the deltas are the files in {DELTA_DIR}")
    conf = OmegaConf.load(path)
    keys = {f"model.{key}" for key in conf.get("model", {})}
    for entry in conf.get("defaults", []):  # e.g. "override /recipe: modern"
        if isinstance(entry, DictConfig):
            keys |= {str(group).removeprefix("override ").lstrip("/") for group in entry}
    return frozenset(keys)


def check_combination(deltas: Sequence[str]) -> None:
    """Fail when two deltas of the list set the same config key, unless the later one builds on the earlier
    in the roadmap (``stage_ratio`` then ``width_96``): otherwise one silently undoes the other."""
    for i, earlier in enumerate(deltas):
        for later in deltas[i + 1:]:
            shared = settings(earlier) & settings(later)
            if not shared or (later in STEPS and earlier in chain(later)):
                continue
            if earlier in STEPS and later in chain(earlier):
                fix = f"list {later} before {earlier}, as the roadmap applies them"
            else:
                fix = "keep only one of them"
            raise ConfigError(
                f"deltas {earlier} and {later} conflict: both set {', '.join(sorted(shared))}, so {later} would "
                f"undo {earlier}. {fix[0].upper()}{fix[1:]}.")


def leave_one_out(final: str = FINAL_STEP, reverts: Sequence[str] | None = None) -> dict[str, list[str]]:
    """The leave-one-out study: for each delta of `final`'s chain (or each of `reverts`), the chain without it;
    and `final` itself (the reference, under the key ``""``)."""
    full = chain(final)
    unknown = [d for d in reverts or () if d not in full]
    if unknown:
        raise ConfigError(f"cannot revert {', '.join(unknown)}: {final} does not apply it. Its deltas: "
                          f"{', '.join(full)}")
    return {"": full, **{reverted: [d for d in full if d != reverted] for reverted in reverts or full}}


REVERTABLE = re.compile(r"(\+step|\+?revert|\+delta)=")  # the overrides expand_reverts reads; others pass


def _values(override: str) -> list:
    """An override's value, or each of its sweep's values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # Hydra only where a revert is given

    parsed = OverridesParser.create().parse_override(override)
    return list(parsed.sweep_iterator()) if parsed.is_sweep_override() else [parsed.value()]


def _listed(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)] if value else []


def expand_reverts(overrides: Sequence[str]) -> list[str]:
    """run.py's overrides with ``revert=[a,b]`` and ``+step=S`` turned into ``+delta=[S's chain without a, b]``
    (followed by any ``+delta=`` given too): the network, the record and the name of that list of deltas
    (``separate_downsampling@-patchify_stem``). A sweep of steps, of reverts or of deltas becomes a sweep of lists.
    Overrides without ``revert=`` come back unchanged; a revert of a delta the step does not apply is refused."""
    overrides = list(overrides)
    found = {m.group(1).lstrip("+"): i for i, o in enumerate(overrides) if (m := REVERTABLE.match(o))}
    if "revert" not in found:
        return overrides
    reverts = [_listed(v) for v in _values(overrides[found["revert"]])]
    if "step" not in found:
        raise ConfigError(f"cannot revert {', '.join(dict.fromkeys(itertools.chain(*reverts)))} without "
                          "+step=<step>: the baseline (no step) applies no delta. Name the step to revert from, "
                          "e.g. +step=separate_downsampling 'revert=[patchify_stem]'")
    steps = [str(v) for v in _values(overrides[found["step"]])]
    extras = [_listed(v) for v in _values(overrides[found["delta"]])] if "delta" in found else [[]]
    variants: list[list[str]] = []
    for step, reverted, extra in itertools.product(steps, reverts, extras):
        if step not in STEPS:
            raise ConfigError(f"unknown step {step!r}; the steps: {', '.join(STEPS)}")
        if reverted and not chain(step):
            raise ConfigError(f"cannot revert {', '.join(reverted)}: {step} applies no delta")
        leave_one_out(step, reverted)  # refuses a delta the step does not apply, naming the step's deltas
        kept = [d for d in chain(step) if d not in reverted]
        deltas = [*kept, *(d for d in extra if d not in kept)]
        if deltas not in variants:
            variants.append(deltas)
    delta = f"+delta=[{','.join(variants[0])}]" if len(variants) == 1 else f"+delta={sweep(variants)}"
    return [delta if i == found["step"] else o for i, o in enumerate(overrides)
            if i == found["step"] or i not in found.values()]


def sweep(variants: Iterable[Sequence[str]]) -> str:
    """A Hydra sweep over lists of deltas, for ``hydra.sweeper.params`` (``[a,b],[a,c]``)."""
    return ",".join(f"[{','.join(deltas)}]" for deltas in variants)


def register_resolvers() -> None:
    """``${run_name:${deltas},${model_name}}`` and ``${leave_one_out:}`` (or ``${leave_one_out:final,[reverts]}``)
    for conf/train.yaml and conf/ablation/."""
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", lambda deltas, model=None: run_name(list(deltas), model))
    if not OmegaConf.has_resolver("leave_one_out"):
        OmegaConf.register_new_resolver(
            "leave_one_out",
            lambda final=FINAL_STEP, reverts=None: sweep(leave_one_out(final, reverts and list(reverts)).values()))
