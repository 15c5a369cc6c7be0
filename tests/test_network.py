"""The parametric network against torchvision's ResNet-50 and timm's ConvNeXt, weight for weight."""

import pytest
import timm
import torch
import torchvision
from helpers import copy_weights_in_order, step_model
from torch import nn

from roadmap.complexity import complexity, count_params
from roadmap.network import RoadmapNet, SpatialConv

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


@pytest.mark.parametrize(("groups", "kernel", "size"), [(8, 7, (2, 2)), (8, 7, (1, 1)), (1, 3, (1, 1)),
                                                        (8, 11, (4, 4)), (8, 7, (2, 5)), (8, 7, (8, 8))])
def test_spatial_conv_skips_only_taps_that_meet_padding(groups, kernel, size):
    """The same outputs and gradients as a plain convolution, on maps smaller than the kernel too."""
    torch.manual_seed(0)
    ours = SpatialConv(8, 8, kernel, 1, kernel // 2, groups=groups)
    plain = nn.Conv2d(8, 8, kernel, 1, kernel // 2, groups=groups)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, *size, requires_grad=True)
    a, b = ours(x), plain(x)
    torch.testing.assert_close(a, b)
    for ga, gb in zip(torch.autograd.grad(a.square().sum(), [x, ours.weight, ours.bias]),
                      torch.autograd.grad(b.square().sum(), [x, plain.weight, plain.bias]), strict=True):
        torch.testing.assert_close(ga, gb)


def test_flops_count_whole_kernels_on_small_maps():
    """At 32 px ConvNeXt's 7x7 kernels meet 2x2 and 1x1 maps; the count is the paper's, of whole kernels."""
    net = RoadmapNet(depths=(1, 1), widths=(8, 16), stem="patchify", block="inverted_bottleneck", depthwise=True,
                     kernel_size=7, spatial_position="first", downsampling="separate", norm="layer", num_classes=10)
    macs = complexity(net, input_size=8, in_chans=3).gflops * 1e9  # maps of 2x2, then 1x1
    stem, downsample, head = 8 * 3 * 16 * 4, 16 * 8 * 4, 16 * 10
    blocks = [(8, 2 * 2), (16, 1)]  # (width, pixels): depthwise 7x7, then 1x1 to 4x and back
    convs = sum(pixels * (width * 49 + 2 * width * 4 * width) for width, pixels in blocks)
    assert macs == stem + downsample + convs + head
    assert all(conv.crop for conv in net.modules() if isinstance(conv, SpatialConv))  # put back after counting
