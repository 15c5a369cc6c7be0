"""The parametric network against torchvision's ResNet-50 and timm's ConvNeXt, weight for weight."""

import pytest
import timm
import torch
import torchvision
from helpers import copy_weights_in_order, step_model

from roadmap.complexity import count_params
from roadmap.network import RoadmapNet

CONVNEXT = {  # paper Table 9 / shared/docs/paper-facts.md: exact parameter counts
    "convnext_t": ("convnext_tiny", 28_589_128),
    "convnext_s": ("convnext_small", 50_223_688),
    "convnext_b": ("convnext_base", 88_591_464),
    "convnext_l": ("convnext_large", 197_767_336),
    "convnext_xl": ("convnext_xlarge", 350_196_968),
}


def timm_convnext_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm registers each block's layer-scale `gamma` before its layers; ours comes after them."""
    state = model.state_dict()
    ordered = {}
    for name, tensor in state.items():
        if not name.endswith(".gamma"):
            ordered[name] = tensor
        if name.endswith(".mlp.fc2.bias"):
            gamma = name.removesuffix("mlp.fc2.bias") + "gamma"
            ordered[gamma] = state[gamma]
    return ordered


def same_logits(reference: torch.nn.Module, ours: torch.nn.Module, size: int, atol: float = 1e-5) -> float:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (reference.eval()(x) - ours.eval()(x)).abs().max().item()
    assert diff <= atol, f"max abs logit difference {diff}"
    return diff


def test_baseline_is_torchvision_resnet50():
    ours = step_model("baseline")
    assert count_params(ours) == 25_557_032
    reference = torchvision.models.resnet50(weights=None)
    copy_weights_in_order(reference.state_dict(), ours)
    same_logits(reference, ours, 224)


def test_separate_downsampling_is_timm_convnext_tiny():
    ours = step_model("separate_downsampling")
    assert count_params(ours) == 28_589_128
    reference = timm.create_model("convnext_tiny", pretrained=False)
    copy_weights_in_order(timm_convnext_state(reference), ours)
    same_logits(reference, ours, 224)


def test_resnet200_regime_ends_at_timm_convnext_base():
    ours = step_model("separate_downsampling", "resnet200")
    reference = timm.create_model("convnext_base", pretrained=False)
    assert count_params(ours) == count_params(reference) == 88_591_464
    copy_weights_in_order(timm_convnext_state(reference), ours)
    same_logits(reference, ours, 64)


@pytest.mark.parametrize("name", CONVNEXT)
def test_convnext_family_is_timm(name):
    timm_name, params = CONVNEXT[name]
    ours = step_model("baseline", "resnet50", f"model={name}")
    assert count_params(ours) == params
    reference = timm.create_model(timm_name, pretrained=False)
    copy_weights_in_order(timm_convnext_state(reference), ours)
    same_logits(reference, ours, 64)


@pytest.mark.parametrize("step", ["baseline", "inverted_bottleneck", "separate_downsampling"])
def test_pointwise_linear_equals_conv(step):
    """The same weights as nn.Linear on channels-last or as 1x1 conv give the same function."""
    conv = step_model(step, "resnet50", "model.pointwise=conv")
    linear = step_model(step, "resnet50", "model.pointwise=linear")
    assert any(isinstance(m, torch.nn.Linear) for m in linear.stages.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in conv.stages.modules())
    copy_weights_in_order(conv.state_dict(), linear)
    same_logits(conv, linear, 64)


def test_stochastic_depth_grows_linearly_from_zero():
    net = RoadmapNet(depths=(2, 2), widths=(8, 16), drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for stage in net.stages for b in stage]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_layer_scale_starts_at_its_init_value():
    net = RoadmapNet(depths=(1,), widths=(8,), layer_scale_init=1e-6)
    gammas = [p for n, p in net.named_parameters() if n.endswith("gamma")]
    assert len(gammas) == 1 and torch.all(gammas[0] == 1e-6)


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"stem": "conv"}, "stem"),
    ({"block": "basic"}, "block"),
    ({"norm": "group"}, "norm"),
    ({"activation": "silu"}, "activation"),
    ({"norm_placement": "none"}, "norm_placement"),
    ({"activation_placement": "two"}, "activation_placement"),
    ({"spatial_position": "last"}, "spatial_position"),
    ({"downsampling": "pool"}, "downsampling"),
    ({"pointwise": "mlp"}, "pointwise"),
    ({"kernel_size": 4}, "kernel_size"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"patch_size": 0}, "patch_size"),
    ({"expansion": 0}, "expansion"),
    ({"depths": ()}, "depths"),
    ({"depths": (3, 3), "widths": (64, 128, 256)}, "widths"),
    ({"widths": (64, 128, 256, -1)}, "widths"),
    ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ({"layer_scale_init": 0.0}, "layer_scale_init"),
    ({"depthwise": "yes"}, "depthwise"),
    ({"num_classes": 0}, "num_classes"),
])
def test_invalid_argument_is_named(kwargs, names):
    with pytest.raises(ValueError, match=rf"argument {names}="):
        RoadmapNet(**kwargs)
