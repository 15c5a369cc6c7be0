"""The figures, drawn from rows of results alone: the roadmap figure and its cost plots, the ablation, mixer and
calibration charts, the factorial study's figures. May import training/, results/, config/, model/, data/ and
roadmap's top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "factorial": ("half_normal_figure", "views_figure"),
    "roadmap": ("ABLATION_FIGURE", "ROADMAP_FIGURES", "calibration_figure"),
})
