"""The figures, drawn from rows of results alone: the roadmap figure and its cost plots, the ablation, mixer and
calibration charts, the factorial study's figures. May import training/, results/, config/, model/, data/ and
roadmap's top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "ablation": ("ABLATION_FIGURE", "MIXERS_FIGURE", "ablation_figure", "mixers_figure"),
    "calibration": ("CENTRE", "calibration_figure"),
    "factorial": ("half_normal_figure", "views_figure"),
    "ladder": ("ladder_figure",),
    "roadmap": ("ROADMAP_FIGURES", "accuracy_vs_gflops", "accuracy_vs_throughput", "goal_runs", "roadmap_figure"),
})
