"""One parametric network that walks from ResNet to ConvNeXt.

Every design change of the paper's roadmap (Liu et al. 2022, Section 2) is one named argument
of :class:`RoadmapNet`. Its defaults are torchvision's ResNet-50; the paper's ConvNeXt-T is::

    RoadmapNet(depths=(3, 3, 9, 3), widths=(96, 192, 384, 768), stem="patchify",
               block="inverted_bottleneck", depthwise=True, kernel_size=7,
               spatial_position="first", activation="gelu",
               activation_placement="one_per_block", norm="layer",
               norm_placement="one_per_block", downsampling="separate", layer_scale_init=1e-6)

"Width" follows the paper: it is the channel count the roadmap talks about ("width 64 -> 96").
A bottleneck block of width w maps ``expansion * w`` channels to ``expansion * w`` through ``w``;
an inverted bottleneck of width w maps ``w`` to ``w`` through ``expansion * w``.

Beyond the paper's path, ``spatial_mixer="window_attention"`` puts Swin's window self-attention
(roadmap/model/attention.py) where the spatial conv was.
"""

import inspect
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from timm.layers import DropPath, LayerNorm2d, LayerScale, LayerScale2d
from torch import nn
from torchvision.ops.misc import Permute

from roadmap.model.attention import WindowMixer
from roadmap.model.weights import load_state, read_state

Layout = Literal["first", "last"]  # channels-first (N, C, H, W) or channels-last (N, H, W, C)

CHOICES = {
    "stem": ("resnet", "patchify"),
    "block": ("bottleneck", "inverted_bottleneck"),
    "spatial_position": ("middle", "first"),
    "activation": ("relu", "gelu"),
    "activation_placement": ("after_every_conv", "one_per_block"),
    "norm": ("batch", "layer"),
    "norm_placement": ("after_every_conv", "one_per_block"),
    "downsampling": ("stride", "separate"),
    "pointwise": ("conv", "linear"),
    "spatial_mixer": (None, "conv", "window_attention"),  # None: conv, the configs' default (conf/model/resnet.yaml)
}
LN_EPS = 1e-6  # ConvNeXt's LayerNorm epsilon; BatchNorm keeps torch's 1e-5 like torchvision


def _check(name: str, ok: bool, must: str, value: object) -> None:
    if not ok:
        raise ValueError(f"RoadmapNet argument {name}={value!r} is invalid: {name} must be {must}.")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(args: dict[str, Any]) -> None:
    """Raise on the first invalid argument of RoadmapNet, naming it and what it must be."""
    for name, choices in CHOICES.items():
        _check(name, args[name] in choices, f"one of {list(choices)}", args[name])
    depths, widths = args["depths"], args["widths"]
    _check("depths", len(depths) > 0 and all(_is_int(d) and d > 0 for d in depths),
           "a non-empty list of positive ints", depths)
    _check("widths", len(widths) == len(depths) and all(_is_int(w) and w > 0 for w in widths),
           f"a list of positive ints, one per stage ({len(depths)} for depths={list(depths)})", widths)
    for name in ("patch_size", "expansion", "in_chans", "num_classes"):
        _check(name, _is_int(args[name]) and args[name] > 0, "a positive int", args[name])
    kernel_size = args["kernel_size"]
    _check("kernel_size", _is_int(kernel_size) and kernel_size > 0 and kernel_size % 2 == 1,
           "a positive odd int (so that 'same' padding keeps the feature map centred)", kernel_size)
    _check("depthwise", isinstance(args["depthwise"], bool), "true or false", args["depthwise"])
    rate = args["drop_path_rate"]
    _check("drop_path_rate", isinstance(rate, (int, float)) and 0 <= rate < 1, "in [0, 1)", rate)
    scale = args["layer_scale_init"]
    _check("layer_scale_init", scale is None or (isinstance(scale, (int, float)) and scale > 0),
           "a positive float, or null for no layer scale", scale)
    if args["spatial_mixer"] == "window_attention":
        _check_attention(args)
    weights = args["weights"]
    _check("weights", weights is None or (isinstance(weights, (str, os.PathLike)) and Path(weights).is_file()),
           "null or a weights file", weights)


def _check_attention(args: dict[str, Any]) -> None:
    """Window attention takes the place of a spatial conv that comes first in the block (Section 2.5's move): in
    the middle of a bottleneck it would mix the wide hidden layer's channels, which Swin's blocks never do. Its
    heads are given per stage, and divide the channels of every block it serves."""
    _check("spatial_mixer", args["spatial_position"] == "first",
           "conv while the spatial layer sits between the 1x1 layers (spatial_position='middle'): window attention "
           "replaces a spatial conv that comes first in the block. Apply window_attention from the move_up_dwconv "
           "step on (+step=move_up_dwconv, kernel_7, ..., separate_downsampling)", args["spatial_mixer"])
    heads, widths = args["num_heads"], args["widths"]
    _check("num_heads", heads is not None and len(heads) == len(widths) and all(_is_int(h) and h > 0 for h in heads),
           f"a list of positive ints, one per stage ({len(widths)}), for spatial_mixer='window_attention'", heads)
    expansion = args["expansion"] if args["block"] == "bottleneck" else 1
    # the channels each stage's attention sees: its blocks' (the first block of stage 1 takes the stem's width)
    channels = [{w * expansion} | ({widths[0]} if i == 0 else set()) for i, w in enumerate(widths)]
    _check("num_heads", all(c % h == 0 for h, chs in zip(heads, channels, strict=True) for c in chs),
           f"head counts that divide each stage's channels {[sorted(chs) for chs in channels]} (Swin-T's [3, 6, 12, "
           "24] for widths 96-768, Swin-B's [4, 8, 16, 32] for 128-1024)", heads)


def check_arguments(**kwargs: Any) -> dict[str, Any]:
    """RoadmapNet's arguments with its defaults filled in, checked as `RoadmapNet(**kwargs)` checks them but
    without building it: roadmap/training/validation.py checks every job of a sweep this way before the first one
    trains."""
    signature = inspect.signature(RoadmapNet)
    try:
        bound = signature.bind(**kwargs)
    except TypeError as error:  # an argument RoadmapNet does not take
        raise ValueError(f"RoadmapNet: {error}; its arguments are {', '.join(signature.parameters)}.") from None
    bound.apply_defaults()
    args = {**bound.arguments, "depths": tuple(bound.arguments["depths"]), "widths": tuple(bound.arguments["widths"])}
    _validate(args)
    return args


def stage_sizes(input_size: int, stem: str, patch_size: int, depths: Sequence[int], downsampling: str) -> list[int]:
    """The side of each stage's feature maps for a square input, 0 where nothing is left. ResNet's stem (a padded
    stride-2 conv and max-pool) and its padded stride-2 convs round up, so they always leave a pixel; the patchify
    stem and the separate, unpadded 2x2 downsampling layers round down: ConvNeXt needs 32 px (8, 4, 2, 1)."""
    # A padded stride-2 layer (kernel k, padding k // 2) gives ceil(size / 2); an unpadded 2x2 one, floor(size / 2).
    size = (input_size + 3) // 4 if stem == "resnet" else input_size // patch_size
    sizes = [size]
    for _ in depths[1:]:
        sizes.append(size := (size + 1) // 2 if downsampling == "stride" else size // 2)
    return sizes


def _to_layout(layout: Layout) -> nn.Module:
    return Permute([0, 2, 3, 1] if layout == "last" else [0, 3, 1, 2])


def layer_order(spatial_position: str, norm_placement: str, activation_placement: str) -> list[str]:
    """The names of a block's branch layers, in order. A norm or an activation is named after the convolution it
    follows, as the paper's Figure 4 draws them, so a delta that drops one leaves the others' names (and weights'
    keys) as they were. ResNet's bottleneck and ConvNeXt's block::

        pw_in pw_in_norm pw_in_act spatial spatial_norm spatial_act pw_out pw_out_norm
        spatial spatial_norm pw_in pw_in_act pw_out

    One norm per block sits before the first 1x1 layer (Section 2.6): with the spatial conv in the middle it
    follows no convolution and is plain ``norm``.
    """
    convs = ("spatial", "pw_in", "pw_out") if spatial_position == "first" else ("pw_in", "spatial", "pw_out")
    names: list[str] = []
    for conv in convs:
        if norm_placement == "one_per_block" and conv == "pw_in":
            # Section 2.6: one norm, before the first 1x1 layer
            names.append("norm" if conv == convs[0] else f"{convs[0]}_norm")
        names.append(conv)
        if norm_placement == "after_every_conv":
            names.append(f"{conv}_norm")
        if (activation_placement == "after_every_conv" and conv != "pw_out") or (
                activation_placement == "one_per_block" and conv == "pw_in"):
            names.append(f"{conv}_act")  # Section 2.6: one activation, between the two 1x1 layers
    return names


class SpatialConv(nn.Conv2d):
    """A stride-1 "same" convolution that skips the kernel taps which only ever meet padding.

    On an H x W map, a tap more than H - 1 rows (or W - 1 columns) from the kernel's centre never touches a pixel:
    the central (2H - 1) x (2W - 1) taps give the same output, and the others' gradients are zero either way. At
    the proxy's 48 px, ConvNeXt's stages 3 and 4 see 3 x 3 and 1 x 1 maps, where a 7 x 7 kernel is 49-98 %
    padding (at 32 px, 2 x 2 and 1 x 1: the CPU's depthwise backward pass on them cost more than on 8 x 8). The
    weights keep the full kernel; `crop = False` runs it whole (complexity.py counts the paper's nominal FLOPs
    that way).
    """

    crop = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (h, w) = self.kernel_size, x.shape[-2:]
        ch, cw = min(kh, 2 * h - 1), min(kw, 2 * w - 1)
        if not self.crop or (ch, cw) == (kh, kw):
            return super().forward(x)
        top, left = (kh - ch) // 2, (kw - cw) // 2
        weight = self.weight[:, :, top:top + ch, left:left + cw]
        return nn.functional.conv2d(x, weight, self.bias, 1, (ch // 2, cw // 2), 1, self.groups)


class Block(nn.Module):
    """A residual block: ``post_act(shortcut(x) + drop_path(branch(x)))``.

    The branch holds three convolutions, two pointwise (``pw_in``, ``pw_out``) and one spatial, with norms and
    activations placed by the roadmap's knobs and named by role (:func:`layer_order`), then the layer ``scale``.
    It is an ``nn.Sequential`` of named layers, so printing a block shows its exact order of layers, with each
    permute between channels-first and channels-last named for the layer it serves (``to_last_pw_in``) and
    ``to_first`` at the end.
    """

    def __init__(
        self,
        in_chs: int,
        hidden_chs: int,
        out_chs: int,
        stride: int,
        *,
        depthwise: bool,
        kernel_size: int,
        spatial_position: str,
        activation: str,
        activation_placement: str,
        norm: str,
        norm_placement: str,
        pointwise: str,
        layer_scale_init: float | None,
        drop_path: float,
        spatial_mixer: str | None = None,
        num_heads: int | None = None,
        shifted: bool = False,
    ) -> None:
        super().__init__()
        names = layer_order(spatial_position, norm_placement, activation_placement)
        layers: dict[str, nn.Module] = {}
        layout: Layout = "first"
        chs = in_chs

        def add(name: str, module: nn.Module, need: Layout | None) -> None:
            nonlocal layout
            if need is not None and need != layout:
                layers[f"to_{need}_{name}"] = _to_layout(need)
                layout = need
            layers[name] = module

        for i, name in enumerate(names):
            # A conv followed by BatchNorm needs no bias: BN removes any per-channel offset.
            following = names[i + 1] if i + 1 < len(names) else ""
            bias = not (norm == "batch" and following.endswith("norm"))
            if name == "spatial" and spatial_mixer == "window_attention" and stride == 1:
                add(name, WindowMixer(chs, num_heads, kernel_size, shifted), "last")
            elif name == "spatial":  # under window attention too where it strides: attention does not downsample
                groups = chs if depthwise else 1
                conv = SpatialConv if stride == 1 else nn.Conv2d
                add(name, conv(chs, chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias), "first")
            elif name in ("pw_in", "pw_out"):
                out = hidden_chs if name == "pw_in" else out_chs
                if pointwise == "linear":
                    add(name, nn.Linear(chs, out, bias=bias), "last")
                else:
                    add(name, nn.Conv2d(chs, out, 1, bias=bias), "first")
                chs = out
            elif name.endswith("norm"):
                need: Layout | None = "first" if norm == "batch" else None
                add(name, make_norm(norm, chs, need or layout), need)
            else:
                add(name, make_activation(activation), None)
        if layer_scale_init is not None:
            scale = LayerScale if layout == "last" else LayerScale2d
            add("scale", scale(out_chs, init_values=layer_scale_init), None)
        if layout == "last":
            layers["to_first"] = _to_layout("first")
        self.branch = nn.Sequential(OrderedDict(layers))

        if in_chs != out_chs or stride != 1:  # ResNet's projection shortcut
            self.shortcut: nn.Module = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_chs, out_chs, 1, stride, bias=norm != "batch"), norm=make_norm(norm, out_chs, "first")
            ))
        else:
            self.shortcut = nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # ResNet applies one more activation after the residual sum; ConvNeXt does not.
        self.post_act = make_activation(activation) if activation_placement == "after_every_conv" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_act(self.shortcut(x) + self.drop_path(self.branch(x)))


def make_norm(norm: str, channels: int, layout: Layout) -> nn.Module:
    """BatchNorm, or LayerNorm over channels, for a tensor in the given layout."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return LayerNorm2d(channels, eps=LN_EPS) if layout == "first" else nn.LayerNorm(channels, eps=LN_EPS)


def make_activation(activation: str) -> nn.Module:
    return nn.ReLU(inplace=True) if activation == "relu" else nn.GELU()


class RoadmapNet(nn.Module):
    """ResNet, ConvNeXt and every network between them, one argument per roadmap change.

    Args:
        depths: blocks per stage; ResNet-50 (3, 4, 6, 3), the stage ratio step (3, 3, 9, 3).
        widths: stage widths in the paper's sense (see the module docstring).
        stem: ``resnet`` (7x7 stride-2 conv, norm, act, 3x3 stride-2 max-pool) or
            ``patchify`` (a ``patch_size`` x ``patch_size`` conv with stride ``patch_size``).
        patch_size: kernel and stride of the patchify stem.
        block: ``bottleneck`` (wide-narrow-wide) or ``inverted_bottleneck`` (narrow-wide-narrow).
        expansion: ratio between a block's wide and narrow channel counts.
        depthwise: the spatial conv has one group per channel (ResNeXt-style) instead of one group.
        kernel_size: size of the spatial conv (odd).
        spatial_position: the spatial conv sits between the 1x1 layers (``middle``) or before them
            (``first``, "moving up the depthwise conv layer").
        activation: ``relu`` or ``gelu``.
        activation_placement: ``after_every_conv`` (and after the residual sum, as ResNet) or
            ``one_per_block`` (between the two 1x1 layers).
        norm: ``batch`` (BatchNorm) or ``layer`` (LayerNorm over channels).
        norm_placement: ``after_every_conv`` or ``one_per_block`` (before the first 1x1 layer).
        downsampling: ``stride`` (stride 2 in a stage's first block, with a projection shortcut)
            or ``separate`` (norm + 2x2 stride-2 conv between stages, plus a norm after the stem
            and one after global pooling).
        layer_scale_init: initial value of a learnable per-channel scale on each block's branch;
            ``None`` for none.
        drop_path_rate: stochastic depth rate of the last block; it grows linearly from 0 at the first.
        pointwise: 1x1 layers as ``conv`` (``nn.Conv2d`` on channels-first tensors) or ``linear``
            (``nn.Linear`` on channels-last tensors); the same function either way.
        spatial_mixer: ``conv`` (or ``None``) for the spatial conv; ``window_attention`` for Swin's (shifted) window
            multi-head self-attention in its place, its window ``kernel_size`` where the stage's map allows
            (roadmap/model/attention.py states the rule). It needs ``spatial_position="first"``. A block whose conv
            strides (``downsampling="stride"``) keeps it: attention does not downsample.
        num_heads: attention heads per stage, for ``window_attention`` (Swin-T's 3, 6, 12, 24: 32 channels a head
            at widths 96-768).
        in_chans: input image channels.
        num_classes: classifier outputs.
        weights: a checkpoint to start from, loaded by name (roadmap/model/weights.py): torchvision's ResNet-50, timm's
            or the authors' ConvNeXts, or this network's own state dict; ``None`` for ConvNeXt's initialisation.
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "resnet",
        patch_size: int = 4,
        block: str = "bottleneck",
        expansion: int = 4,
        depthwise: bool = False,
        kernel_size: int = 3,
        spatial_position: str = "middle",
        activation: str = "relu",
        activation_placement: str = "after_every_conv",
        norm: str = "batch",
        norm_placement: str = "after_every_conv",
        downsampling: str = "stride",
        layer_scale_init: float | None = None,
        drop_path_rate: float = 0.0,
        pointwise: str = "conv",
        spatial_mixer: str | None = "conv",
        num_heads: Sequence[int] | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        weights: str | os.PathLike | None = None,
    ) -> None:
        depths, widths = tuple(depths), tuple(widths)
        _validate(locals())  # before anything is built: a bad config fails here, naming the argument
        super().__init__()

        def stage_chs(width: int) -> int:  # channels between blocks of a stage
            return width * expansion if block == "bottleneck" else width

        separate = downsampling == "separate"
        if stem == "resnet":
            stem_layers = {
                "conv": nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=norm != "batch"),
                "norm": make_norm(norm, widths[0], "first"),
                "act": make_activation(activation),
                "pool": nn.MaxPool2d(3, 2, 1),
            }
        else:
            stem_bias = not (separate and norm == "batch")
            stem_layers = {"conv": nn.Conv2d(in_chans, widths[0], patch_size, patch_size, bias=stem_bias)}
            if separate:
                stem_layers["norm"] = make_norm(norm, widths[0], "first")
        self.stem = nn.Sequential(OrderedDict(stem_layers))

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also when built on "meta"
        stages, chs = [], widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
            downsample: nn.Module = nn.Identity()  # under `stride` the first block strides; stage 1 follows the stem
            if separate and i > 0:
                downsample = nn.Sequential(OrderedDict(
                    norm=make_norm(norm, chs, "first"), conv=nn.Conv2d(chs, stage_chs(width), 2, 2)))
                chs = stage_chs(width)
            blocks: list[nn.Module] = []
            for j in range(depth):
                hidden = width * expansion if block == "inverted_bottleneck" else width
                stride = 2 if (i > 0 and j == 0 and not separate) else 1
                blocks.append(Block(
                    chs, hidden, stage_chs(width), stride, depthwise=depthwise, kernel_size=kernel_size,
                    spatial_position=spatial_position, activation=activation,
                    activation_placement=activation_placement, norm=norm, norm_placement=norm_placement,
                    pointwise=pointwise, layer_scale_init=layer_scale_init, drop_path=rates.pop(0),
                    spatial_mixer=spatial_mixer, num_heads=num_heads[i] if num_heads else None,
                    shifted=j % 2 == 1,  # Swin: regular windows, then windows shifted by half their size
                ))
                chs = stage_chs(width)
            stages.append(nn.Sequential(OrderedDict(downsample=downsample, blocks=nn.Sequential(*blocks))))
        self.stages = nn.Sequential(*stages)

        head: dict[str, nn.Module] = {"pool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(1)}
        if separate:
            head["norm"] = nn.BatchNorm1d(chs) if norm == "batch" else nn.LayerNorm(chs, eps=LN_EPS)
        head["fc"] = nn.Linear(chs, num_classes)
        self.head = nn.Sequential(OrderedDict(head))
        self.apply(_init_weights)
        if weights is not None:
            load_state(self, read_state(weights), f"weights={weights}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def no_weight_decay(self) -> set[str]:
        """Parameters timm's optimizer factory keeps out of weight decay beside the 1-D ones: window attention's
        relative position bias tables, as Swin's own training leaves them (timm's SwinTransformer.no_weight_decay)."""
        return {name for name, _ in self.named_parameters() if name.endswith("relative_position_bias_table")}


def _init_weights(module: nn.Module) -> None:
    """ConvNeXt's initialisation for every network of the roadmap: truncated normal, zero bias."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
