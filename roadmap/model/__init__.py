"""The networks and what is measured of them without training: the parametric roadmap network, window
attention and Swin, published weights loaded by name, parameters and FLOPs. May import roadmap's top level only."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "attention": ("check_swin_arguments", "check_windows", "swin_transformer"),
    "flops": ("Complexity", "complexity"),
    "network": ("RoadmapNet", "check_arguments", "stage_sizes"),
    "weights": ("fitted_state", "read_state"),
})
