"""The roadmap itself: its steps in order and the paper's number for each.

This is the one place that code reads the order of the steps and the paper's reference values
from (tables, figures, tests). Each step's network and recipe live in ``conf/step/<name>.yaml``,
which applies the step's delta (``conf/delta/<name>.yaml``) on top of its parent step.
Numbers: Liu et al., "A ConvNet for the 2020s" (CVPR 2022): Table 10 for the ResNet-50 regime, Table 11 for
the ResNet-200 one, and Figure 2's labels where it rounds differently.
"""

from dataclasses import dataclass

REGIMES = ("resnet50", "resnet200")


@dataclass(frozen=True)
class PaperValue:
    """One row of the paper's Table 10 (ResNet-50 regime) or Table 11 (ResNet-200 regime)."""

    top1: float
    gflops: float
    fig2_gflops: float | None = None  # Figure 2's label where it is not the table's value rounded


@dataclass(frozen=True)
class Step:
    name: str
    parent: str | None  # the step this one builds on
    group: str  # the paper's grouping of the changes in Figure 2
    section: str  # where the paper describes the change
    adopted: bool  # False for the kernel sizes the roadmap tried and did not keep
    paper: dict[str, PaperValue]  # keyed by regime

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


def _step(name: str, parent: str | None, group: str, section: str, r50: PaperValue, r200: PaperValue,
          adopted: bool = True) -> Step:
    return Step(name, parent, group, section, adopted, {"resnet50": r50, "resnet200": r200})


P = PaperValue
ROADMAP: tuple[Step, ...] = (
    _step("baseline", None, "training", "2.1", P(76.13, 4.09), P(78.20, 15.01)),
    _step("modern_recipe", "baseline", "training", "2.1", P(78.82, 4.09), P(81.14, 15.01)),
    _step("stage_ratio", "modern_recipe", "macro design", "2.2", P(79.36, 4.53), P(81.33, 14.52)),
    _step("patchify_stem", "stage_ratio", "macro design", "2.2", P(79.51, 4.42), P(81.59, 14.38)),
    _step("depthwise_conv", "patchify_stem", "ResNeXt", "2.3", P(78.28, 2.35), P(80.54, 7.23)),
    _step("width_96", "depthwise_conv", "ResNeXt", "2.3", P(80.50, 5.27), P(81.85, 16.76)),
    _step("inverted_bottleneck", "width_96", "inverted bottleneck", "2.4", P(80.64, 4.64), P(82.64, 15.68)),
    _step("move_up_dwconv", "inverted_bottleneck", "large kernel", "2.5", P(79.92, 4.07), P(82.04, 14.63)),
    _step("kernel_5", "move_up_dwconv", "large kernel", "2.5", P(80.35, 4.10), P(82.32, 14.70)),
    _step("kernel_7", "move_up_dwconv", "large kernel", "2.5", P(80.57, 4.15), P(82.30, 14.81)),
    _step("kernel_9", "move_up_dwconv", "large kernel", "2.5", P(80.57, 4.21), P(82.27, 14.95), adopted=False),
    _step("kernel_11", "move_up_dwconv", "large kernel", "2.5", P(80.47, 4.29), P(82.18, 15.13), adopted=False),
    _step("gelu", "kernel_7", "micro design", "2.6", P(80.62, 4.15), P(82.19, 14.81)),
    _step("fewer_activations", "gelu", "micro design", "2.6", P(81.27, 4.15), P(82.71, 14.81)),
    _step("fewer_norms", "fewer_activations", "micro design", "2.6", P(81.41, 4.15), P(83.17, 14.81)),
    _step("layer_norm", "fewer_norms", "micro design", "2.6", P(81.47, 4.46, 4.2), P(83.35, 14.81)),
    _step("separate_downsampling", "layer_norm", "micro design", "2.6", P(81.97, 4.49), P(83.60, 15.35)),
)
STEPS: dict[str, Step] = {step.name: step for step in ROADMAP}
# The goal line each regime's roadmap is drawn against (Figure 2): Swin-T for ConvNeXt-T, Swin-B for ConvNeXt-B
# (Table 11's last row). A named model of its own (conf/model/swin_*.yaml), never a step.
GOAL: dict[str, tuple[str, PaperValue]] = {"resnet50": ("swin_t", P(81.30, 4.50)),
                                           "resnet200": ("swin_b", P(83.50, 15.43))}
ORDER = {step.name: i for i, step in enumerate(ROADMAP)}  # a step's position in the roadmap


def roadmap_order(name: str) -> int:
    """Sort key: a roadmap step's position; anything else (an extra delta, an ablation's name) after them."""
    return ORDER.get(name, len(ORDER))


def get_step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}; valid steps: {', '.join(STEPS)}") from None


def chain(name: str) -> list[str]:
    """The deltas a step applies, in roadmap order: its ancestors' and its own (none for the baseline)."""
    names: list[str] = []
    step: Step | None = get_step(name)
    while step is not None and step.parent is not None:
        names.append(step.name)
        step = get_step(step.parent)
    return names[::-1]


def paper_delta(step: str, regime: str = "resnet50") -> float:
    """The paper's Δ top-1 of a step over its parent (Table 10 or 11): what the step's change did on its path."""
    parent = STEPS[step].parent
    return round(STEPS[step].paper[regime].top1 - STEPS[parent].paper[regime].top1, 2)
