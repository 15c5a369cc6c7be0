"""The parametric network against torchvision's ResNet-50 and timm's ConvNeXt, weight for weight."""

import re

import pytest
import timm
import torch
import torchvision
from helpers import perturb_norms, same_logits, step_model
from torch import nn

from roadmap.config.composition import build_model, compose, step_overrides
from roadmap.model.flops import complexity, count_params
from roadmap.model.network import RoadmapNet, SpatialConv
from roadmap.model.weights import load_state
from roadmap.steps import STEPS

CONVNEXT = {  # paper Table 9 / shared/docs/paper-facts.md: exact parameter counts
    "convnext_t": ("convnext_tiny", 28_589_128),
    "convnext_s": ("convnext_small", 50_223_688),
    "convnext_b": ("convnext_base", 88_591_464),
    "convnext_l": ("convnext_large", 197_767_336),
    "convnext_xl": ("convnext_xlarge", 350_196_968),
}


def test_baseline_is_torchvision_resnet50(tmp_path):
    reference = perturb_norms(torchvision.models.resnet50(weights=None))
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    ours = step_model("baseline", "resnet50", f"model.weights={tmp_path / 'resnet50.pth'}")  # loaded by name
    assert count_params(ours) == 25_557_032
    same_logits(reference, ours, 224)


def test_separate_downsampling_is_timm_convnext_tiny(tmp_path):
    """timm's nn.Linear pointwise layers load into the roadmap's 1x1 convolutions."""
    reference = perturb_norms(timm.create_model("convnext_tiny", pretrained=False))
    torch.save(reference.state_dict(), tmp_path / "convnext_tiny.pth")
    ours = step_model("separate_downsampling", "resnet50", f"model.weights={tmp_path / 'convnext_tiny.pth'}")
    assert count_params(ours) == 28_589_128
    same_logits(reference, ours, 224)


def test_resnet200_regime_ends_at_timm_convnext_base():
    ours = step_model("separate_downsampling", "resnet200")
    reference = perturb_norms(timm.create_model("convnext_base", pretrained=False))
    assert count_params(ours) == count_params(reference) == 88_591_464
    load_state(ours, reference.state_dict())
    same_logits(reference, ours, 64)


@pytest.mark.parametrize("name", CONVNEXT)
def test_convnext_family_is_timm(name):
    timm_name, params = CONVNEXT[name]
    ours = step_model("baseline", "resnet50", f"model={name}")
    assert count_params(ours) == params
    reference = perturb_norms(timm.create_model(timm_name, pretrained=False))
    load_state(ours, reference.state_dict())
    same_logits(reference, ours, 64)


@pytest.mark.parametrize("step", ["baseline", "inverted_bottleneck", "separate_downsampling"])
def test_pointwise_linear_equals_conv(step):
    """The same weights as nn.Linear on channels-last or as 1x1 conv give the same function."""
    conv = step_model(step, "resnet50", "model.pointwise=conv")
    linear = step_model(step, "resnet50", "model.pointwise=linear")
    assert any(isinstance(m, torch.nn.Linear) for m in linear.stages.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in conv.stages.modules())
    load_state(linear, perturb_norms(conv).state_dict())
    same_logits(conv, linear, 64)


@pytest.mark.parametrize(("model", "layers"), [
    ("resnet", ["pw_in", "pw_in_norm", "pw_in_act", "spatial", "spatial_norm", "spatial_act", "pw_out", "pw_out_norm"]),
    ("convnext_t", ["spatial", "spatial_norm", "to_last_pw_in", "pw_in", "pw_in_act", "pw_out", "scale", "to_first"]),
])
def test_a_block_names_its_layers_by_role_and_prints_them_in_order(model, layers):
    """Figure 4's bottleneck and ConvNeXt block; a stage holds a `downsample` (Identity under `stride`) and `blocks`."""
    net = build_model(compose([f"model={model}"]))
    block = net.stages[1].blocks[0]
    assert [name for name, _ in block.branch.named_children()] == layers
    printed = re.findall(r"^\s+\((\w+)\): ", str(block.branch), re.MULTILINE)
    assert printed == layers
    assert isinstance(net.stages[1].downsample, nn.Identity) == (model == "resnet")


@pytest.mark.parametrize("step", ["move_up_dwconv", "kernel_7", "gelu", "fewer_activations", "fewer_norms",
                                  "layer_norm"])
def test_a_step_renames_no_layer(step):
    """A delta that moves or changes a layer keeps its name, and one that drops norms leaves the other layers' names
    as they were: the same layer has the same key at every step."""
    parent = STEPS[step].parent
    layers = {name: {key.rsplit(".", 1)[0] for key in build_model(compose(step_overrides(name))).state_dict()}
              for name in (step, parent)}
    if step == "fewer_norms":
        assert layers[step] < layers[parent]
        assert {layer.rsplit(".", 1)[1] for layer in layers[parent] - layers[step]} == {"pw_in_norm", "pw_out_norm"}
    else:
        assert layers[step] == layers[parent]


def test_stochastic_depth_grows_linearly_from_zero():
    net = RoadmapNet(depths=(2, 2), widths=(8, 16), drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for stage in net.stages for b in stage.blocks]
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
    ({"weights": "/no/such/file.pth"}, "weights"),
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
