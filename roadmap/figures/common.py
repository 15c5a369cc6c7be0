"""What the figures share: their style and canvas, the files they are saved to, FLOPs in readable units, and
labels placed beside their points where they cover nothing."""

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text

STYLE = {
    "font.size": 10,
    "axes.spines.right": False,
    "svg.hashsalt": "roadmap",  # fixed element ids, so redrawing the same records rewrites the same SVG
}
GOAL_COLOR = "#e07b54"  # Figure 2's salmon for Swin
# Where a point's label may go, in points from the point, in order of preference: nearest first, right before left.
LABEL_OFFSETS = sorted(((dx, dy) for dx in (8, -8, 18, -18, 32, -32, 50, -50)
                        for dy in (0, 10, -10, 20, -20, 30, -30, 45, -45, 60, -60)),
                       key=lambda offset: (math.hypot(*offset), offset[0] < 0))


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display needed, and a renderer to measure labels with
    return fig


def _save(fig: Figure, out_base: Path) -> None:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_base.parent / f"{out_base.name}.png", dpi=150)
    fig.savefig(out_base.parent / f"{out_base.name}.svg", metadata={"Date": None})


def _data_name(rows: list[dict]) -> str:
    return rows[0]["data"].removesuffix("Data")  # the data module's class name, e.g. FashionMNISTData


def _flops(rows: list[dict]) -> tuple[list[float], str]:
    """Each row's FLOPs at the run's input size, in G or, for proxy networks, in M so the labels stay short."""
    gflops = [row["gflops"] for row in rows]
    px = rows[0]["input_size"]
    if max(gflops) < 0.1:
        return [g * 1000 for g in gflops], f"MFLOPs at {px}×{px} px"
    return gflops, f"GFLOPs at {px}×{px} px"


def _shared_area(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each box (x0, y0, x1, y1), the area it shares with `others`, summed."""
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    return (width.clip(0) * height.clip(0)).sum(axis=1)


def _place_labels(ax: Axes, labels: list[Annotation], points: list[tuple[float, float, float]]) -> None:
    """Move each point's label (annotating (x, y) with error bar +-sd) to the nearest spot, right before left,
    where it covers no other label, point or error bar: several steps share their FLOPs or throughput, so labels
    beside their points would sit on each other. Crowded points choose first; a label moved away gets a leader line."""
    fig = ax.get_figure()
    fig.canvas.draw()  # the constrained layout fixes the axes, and so where everything lands
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72
    xy = np.array([(x, y) for x, y, _ in points])
    sd = np.array([s for _, _, s in points])
    centres = ax.transData.transform(xy)
    bottoms = ax.transData.transform(np.c_[xy[:, 0], xy[:, 1] - sd])[:, 1]
    tops = ax.transData.transform(np.c_[xy[:, 0], xy[:, 1] + sd])[:, 1]
    markers = np.c_[centres - 5 * pt, centres + 5 * pt]
    error_bars = np.c_[centres[:, 0] - 4 * pt, bottoms, centres[:, 0] + 4 * pt, tops]
    obstacles = np.concatenate([markers, error_bars])
    frame = ax.get_window_extent(renderer).extents[None, :]
    offsets = np.array(LABEL_OFFSETS) * pt
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    for i in np.argsort(-(distances < 60 * pt).sum(axis=1), kind="stable"):
        size = Text.get_window_extent(labels[i], renderer)
        x0 = centres[i, 0] + offsets[:, 0] - np.where(offsets[:, 0] < 0, size.width, 0)
        y0 = centres[i, 1] + offsets[:, 1] - size.height / 2
        boxes = np.c_[x0 - pt, y0 - pt, x0 + size.width + pt, y0 + size.height + pt]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        clash = _shared_area(boxes, obstacles) + area - _shared_area(boxes, frame)  # 0: a free spot in the axes
        best = int(np.argmin(clash))  # the first free spot, else the least covering one
        obstacles = np.concatenate([obstacles, boxes[best:best + 1]])
        labels[i].xyann = LABEL_OFFSETS[best]
        labels[i].set_horizontalalignment("right" if LABEL_OFFSETS[best][0] < 0 else "left")
        labels[i].arrow_patch.set_visible(best > 0)
