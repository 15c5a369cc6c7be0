"""Published weights by name: the authors' checkpoint format, and what a mismatch says (torchvision's and timm's
state dicts load in tests/test_network.py's fidelity tests)."""

import logging
import re

import pytest
import timm
import torch
from helpers import perturb_norms, same_logits, step_model
from timm.models.convnext import checkpoint_filter_fn

from roadmap.config.composition import compose
from roadmap.model.network import RoadmapNet
from roadmap.model.weights import load_state
from roadmap.training.job import train

TINY = {"depths": (1, 1), "widths": (8, 16), "num_classes": 5}
AUTHORS_NAMES = (  # timm's names -> the authors' (models/convnext.py): the inverse of timm's checkpoint filter
    (r"^stem\.", "downsample_layers.0."),
    (r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
    (r"conv_dw", "dwconv"),
    (r"mlp\.fc", "pwconv"),
    (r"^head\.norm\.", "norm."),
    (r"^head\.fc\.", "head."),
)


def authors_checkpoint(reference: torch.nn.Module) -> dict:
    state = {}
    for key, value in reference.state_dict().items():
        for pattern, replacement in AUTHORS_NAMES:
            key = re.sub(pattern, replacement, key)
        state[key] = value
    return {"model": state}


def test_authors_checkpoint_loads_into_convnext_t_and_separate_downsampling(tmp_path):
    """One file of the authors' format (a `model` key, nn.Linear pointwise layers) gives timm's logits through
    `model=convnext_t` (nn.Linear) and through the roadmap's last step (1x1 convolutions)."""
    reference = perturb_norms(timm.create_model("convnext_tiny", pretrained=False))
    checkpoint = authors_checkpoint(reference)
    filtered = checkpoint_filter_fn(checkpoint, reference)  # the format is the one timm's own filter reads
    assert filtered.keys() == reference.state_dict().keys()
    path = tmp_path / "convnext_tiny_1k_224_ema.pth"
    torch.save(checkpoint, path)
    for network in (("baseline", "resnet50", "model=convnext_t"), ("separate_downsampling", "resnet50")):
        same_logits(reference, step_model(*network, f"model.weights={path}"), 64)


def test_a_mismatch_names_missing_and_unexpected_keys_and_wrong_shapes():
    state = RoadmapNet(**TINY).state_dict()
    state.pop("stem.norm.running_mean")
    state["stages.0.blocks.0.branch.extra.weight"] = torch.zeros(3)
    state["stages.1.blocks.0.branch.spatial.weight"] = torch.zeros(4, 4, 3, 3)
    with pytest.raises(ValueError, match="do not fit") as error:
        load_state(RoadmapNet(**TINY), state)
    message = str(error.value)
    assert re.search(r"missing from the weights \(1\): stem\.norm\.running_mean\n", message)
    assert re.search(r"unexpected, not in the network \(1\): stages\.0\.blocks\.0\.branch\.extra\.weight\n", message)
    assert "stages.1.blocks.0.branch.spatial.weight (4, 4, 3, 3) for (16, 16, 3, 3)" in message


def test_a_classifier_for_other_classes_keeps_its_init_for_fine_tuning(caplog):
    source = perturb_norms(RoadmapNet(**{**TINY, "num_classes": 7}))
    net = RoadmapNet(**TINY)
    head = net.head.fc.weight.clone()
    with caplog.at_level(logging.WARNING, "roadmap.model.weights"):
        load_state(net, source.state_dict())
    assert "the classifier has 7 classes, the network 5" in caplog.text
    assert torch.equal(net.head.fc.weight, head)
    assert torch.equal(net.stem.norm.running_var, source.stem.norm.running_var)


def test_weights_that_do_not_fit_fail_before_any_data_is_read(tmp_path):
    """ConvNeXt-T's weights for the ResNet-50 run: the error names the keys; the data root does not exist, so
    reading any data would fail otherwise."""
    path = tmp_path / "convnext.pth"
    torch.save(RoadmapNet(**TINY, stem="patchify", downsampling="separate").state_dict(), path)
    cfg = compose(["data=imagenet", f"data.root={tmp_path}/missing", "data.num_classes=10", "scale.epochs=1",
                   "logger.wandb.enabled=false", f"model.weights={path}"])
    with pytest.raises(ValueError, match=r"weights=.*convnext\.pth: the weights do not fit") as error:
        train(cfg, tmp_path)
    assert "missing from the weights" in str(error.value)
    assert re.search(r"unexpected, not in the network \(\d+\): .*stages\.1\.downsample\.conv\.weight", str(error.value))
