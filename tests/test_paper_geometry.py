"""The paper's setting end to end on the CPU: full widths, 224 px, the real recipes and a global batch reached by
gradient accumulation, on a miniature ImageNet-format folder, for two optimizer steps. The run validates,
checkpoints, is interrupted, resumes to the uninterrupted record, and writes it."""

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from PIL import Image

from roadmap.config.composition import compose
from roadmap.training.job import skip_or_continue, train

CLASSES = ("n01440764", "n02102040")  # two of ImageNet's wnids, in the class-folder layout a prepared copy has


@pytest.fixture(scope="module")
def miniature(tmp_path_factory):
    """Two classes, two training and two validation JPEGs each, at ImageNet's usual 500 x 375."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 2)):
        for wnid in CLASSES:
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.JPEG", quality=90)
    return root


class Interrupt(Callback):
    """A crash as the second epoch starts, after the first epoch's checkpoint."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


# ResNet-50 under torchvision's recipe, ConvNeXt-T under Table 5's; each head has the folder's 2 classes, not
# 1,000: the published counts (25,557,032 and 28,589,128) less 998 classes' weights and biases.
NETWORKS = {"baseline": ([], 25_557_032 - 998 * 2049), "separate_downsampling": (["+step=separate_downsampling"],
                                                                                   28_589_128 - 998 * 769)}


@pytest.mark.parametrize("network", list(NETWORKS))
def test_the_paper_setting_trains_validates_resumes_and_records(network, miniature, tmp_path):
    step, params = NETWORKS[network]
    # 4 images in batches of 2, accumulated to the global batch of 4: one optimizer step per epoch, two in all
    overrides = ["scale=paper", "data=imagenet", f"data.root={miniature}", "data.num_workers=0",
                 "scale.batch_size=2", "scale.global_batch_size=4", "scale.epochs=2", "scale.val_every_n_epochs=2",
                 "logger.wandb.enabled=false",
                 *step]
    whole = train(compose(overrides), tmp_path / "whole")
    assert whole["status"] == "completed" and whole["name"] == network
    assert whole["input_size"] == 224 and whole["params"] == params and whole["optimizer_steps"] == 2
    assert whole["accumulate_grad_batches"] == 2 and whole["global_batch_size"] == 4
    assert whole["val_images"] == 4 and whole["scale"] == "paper"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(compose(overrides), tmp_path / "cut", callbacks=[Interrupt()])
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").exists()
    again = compose(overrides)
    assert not skip_or_continue(again, tmp_path / "cut")  # continues from the first epoch's checkpoint
    resumed = train(again, tmp_path / "cut")
    for key in ("train_loss", "top1", "top5", "ema_top1", "optimizer_steps"):
        assert resumed[key] == whole[key], key
