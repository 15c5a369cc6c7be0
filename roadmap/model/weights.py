"""Published weights, loaded by name into the roadmap network that matches them (`model.weights=<file>`).

Three formats, recognised by their keys and renamed to the roadmap's (roadmap/model/network.py names layers by role):

- torchvision's ResNet-50 (`conv1`, `layer1.0.conv1`, ..., `fc`; timm's `resnet50` uses the same keys), for the
  no-step network;
- timm's ConvNeXts (`stem.0`, `stages.0.blocks.0.conv_dw`, ...), for `model=convnext_*` and `separate_downsampling`;
- the authors' checkpoints (a top-level `model` key, `downsample_layers`, `dwconv`, `pwconv1`, ...), which timm's
  own filter turns into timm's names first.

A state dict with the roadmap's own names loads as it is. An `nn.Linear` weight (out, in) and a 1x1 conv weight
(out, in, 1, 1) hold the same numbers, so a checkpoint fits `pointwise: conv` and `pointwise: linear` alike.
"""

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from timm.models.convnext import ConvNeXt, checkpoint_filter_fn
from torch import nn

log = logging.getLogger(__name__)
State = Mapping[str, torch.Tensor]
Rules = tuple[tuple[str, str | Callable[[re.Match], str]], ...]

BLOCK = r"(blocks\.\d+\.)"  # a block's prefix, kept by each rename below
TORCHVISION_RESNET: Rules = (
    (r"^conv1\.", "stem.conv."),
    (r"^bn1\.", "stem.norm."),
    (r"^layer(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}.blocks."),
    (BLOCK + r"conv1\.", r"\1branch.pw_in."),
    (BLOCK + r"bn1\.", r"\1branch.pw_in_norm."),
    (BLOCK + r"conv2\.", r"\1branch.spatial."),
    (BLOCK + r"bn2\.", r"\1branch.spatial_norm."),
    (BLOCK + r"conv3\.", r"\1branch.pw_out."),
    (BLOCK + r"bn3\.", r"\1branch.pw_out_norm."),
    (BLOCK + r"downsample\.0\.", r"\1shortcut.conv."),
    (BLOCK + r"downsample\.1\.", r"\1shortcut.norm."),
    (r"^fc\.", "head.fc."),
)
TIMM_CONVNEXT: Rules = (
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.norm."),
    (r"\.downsample\.0\.", ".downsample.norm."),
    (r"\.downsample\.1\.", ".downsample.conv."),
    (BLOCK + r"conv_dw\.", r"\1branch.spatial."),
    (BLOCK + r"norm\.", r"\1branch.spatial_norm."),
    (BLOCK + r"mlp\.fc1\.", r"\1branch.pw_in."),
    (BLOCK + r"mlp\.fc2\.", r"\1branch.pw_out."),
    (BLOCK + r"gamma$", r"\1branch.scale.gamma"),
)  # head.norm and head.fc are named alike
CLASSIFIER = ("head.fc.weight", "head.fc.bias")
SHOWN = 10  # keys listed per kind of mismatch


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint file's tensors: `.safetensors` (timm's hub files), else a torch pickle of tensors only."""
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import load_file  # timm's dependency, needed only for these files

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _authors_to_timm(state: State) -> dict[str, torch.Tensor]:
    """The authors' keys under timm's names, by timm's own filter. It reads the shape each `nn.Linear` weight takes
    from a timm model, built here on the meta device (no memory, no init) with the checkpoint's depths and widths."""
    depths = Counter(int(k.split(".")[1]) for k in state if re.fullmatch(r"stages\.\d+\.\d+\.dwconv\.weight", k))
    stages = sorted(depths)
    with torch.device("meta"):
        reference = ConvNeXt(depths=[depths[i] for i in stages], num_classes=0,
                             dims=[state[f"stages.{i}.0.dwconv.weight"].shape[0] for i in stages])
    return checkpoint_filter_fn(dict(state), reference)


def roadmap_names(state: State) -> dict[str, torch.Tensor]:
    """`state` under the roadmap's names, whichever of the known formats it is in."""
    if isinstance(state.get("model"), Mapping):  # the authors' checkpoints wrap the weights
        state = state["model"]
    if "downsample_layers.0.0.weight" in state:
        state = _authors_to_timm(state)
    if "layer1.0.conv1.weight" in state:
        rules = TORCHVISION_RESNET
    elif "stages.0.blocks.0.conv_dw.weight" in state:
        rules = TIMM_CONVNEXT
    else:
        rules = ()
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def _fit(value: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """`value` in `shape`: as it is, or an `nn.Linear` weight as a 1x1 conv weight and back; None if it does not fit."""
    if value.shape == shape:
        return value
    if {value.dim(), len(shape)} == {2, 4} and value.shape[:2] == shape[:2] and value.numel() == shape.numel():
        return value.reshape(shape)
    return None


def _listed(keys: list[str]) -> str:
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def fitted_state(net: nn.Module, state: State, source: str = "state dict") -> dict[str, torch.Tensor]:
    """`state` renamed and reshaped to `net`'s keys (see the module docstring), checked against `net`'s shapes only,
    so that `net` may live on the meta device (roadmap/training/validation.py checks a run's weights before any data is
    read). Anything that does not fit raises a ValueError listing the missing and unexpected keys and the wrong
    shapes, except a classifier for another number of classes, which is left out (fine-tuning on another data set),
    with a warning."""
    renamed, target = roadmap_names(state), net.state_dict()
    fitted = {key: _fit(value, target[key].shape) for key, value in renamed.items() if key in target}
    wrong = [f"{key} {tuple(renamed[key].shape)} for {tuple(target[key].shape)}"
             for key, value in fitted.items() if value is None]
    missing = [key for key in target if key not in renamed]
    unexpected = [key for key in renamed if key not in target]
    if not missing and not unexpected and wrong and all(w.split()[0] in CLASSIFIER for w in wrong):
        log.warning("%s: the classifier has %d classes, the network %d: it keeps its initial weights",
                    source, renamed["head.fc.weight"].shape[0], target["head.fc.weight"].shape[0])
        fitted = {key: value for key, value in fitted.items() if key not in CLASSIFIER}
    elif missing or unexpected or wrong:
        problems = [f"{what} ({len(keys)}): {_listed(keys)}" for what, keys in (
            ("missing from the weights", missing), ("unexpected, not in the network", unexpected),
            ("wrong shape, weights' for the network's", wrong)) if keys]
        raise ValueError(f"{source}: the weights do not fit the network (the matching model=, at scale=paper?):\n  "
                         + "\n  ".join(problems))
    return fitted


def load_state(net: nn.Module, state: State, source: str = "state dict") -> None:
    """Load `state` into `net` by name; what does not fit raises a ValueError, as `fitted_state` says."""
    # strict up to the classifier: every other key was checked
    net.load_state_dict(fitted_state(net, state, source), strict=False)
