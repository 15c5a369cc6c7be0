"""The device data path: timm's augmentations drawn per sample as batched tensor operations, against timm's own
(PIL) transforms; batches fixed by (seed, epoch) and resumable; the `data.pipeline` knob and the record."""

import json
import math
import random
import re
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from helpers import tiny_cfg
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from PIL import Image
from scipy.stats import chisquare, ks_2samp
from timm.data import auto_augment
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import RandomResizedCropAndInterpolation

from roadmap.config.composition import CONF_DIR
from roadmap.data import FashionMNISTData, FolderData
from roadmap.data.device import DeviceAugment, crop_boxes, erase, resized_crops
from roadmap.data.randaugment import GEOMETRIC, LEVELS, PIXEL_OPS, BatchRandAugment, affine_matrices, warp
from roadmap.data.sampling import BatchKey
from roadmap.errors import ConfigError
from roadmap.tools.benchmark import main as bench
from roadmap.training.job import train

CPU = torch.device("cpu")
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(not DEBIAN.is_dir(), reason="needs Debian's Fashion-MNIST")
PIL_MODES = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def images(n: int, channels: int, size: int = 28, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 images with grain, (n, H, W) or (n, H, W, 3): content that resampling reads as photos."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
        coarse = coarse[..., 0] if channels == 1 else coarse
        smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.int32)
        out.append(np.clip(smooth + rng.integers(-20, 21, smooth.shape), 20, 235).astype(np.uint8))
    return np.stack(out)


def nchw(array: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(array)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def augment_block(**changes) -> dict:
    block = OmegaConf.merge(OmegaConf.load(CONF_DIR / "recipe" / "original.yaml").augment,
                            OmegaConf.load(CONF_DIR / "recipe" / "modern.yaml").augment, changes)
    return OmegaConf.to_container(block)


# --- What each sample gets, against timm's transforms on PIL images ---------------------------------------------


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("size", [48, 16])  # up and down: PIL's filters, antialiased when shrinking
def test_crops_are_pil_resized_crops_within_one_level(mode, size):
    generator = torch.Generator().manual_seed(1)
    for channels in (1, 3):
        raw = images(12, channels, seed=channels)
        boxes = crop_boxes(12, 28, 28, (0.08, 1.0), (3 / 4, 4 / 3), generator, CPU)
        flips = torch.arange(12) % 2 == 0
        ours = resized_crops(nchw(raw), boxes, flips, size, mode)
        for k in range(12):
            top, left, h, w = (int(v) for v in boxes[k])
            pil = Image.fromarray(raw[k]).crop((left, top, left + w, top + h)).resize((size, size), PIL_MODES[mode])
            if flips[k]:
                pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
            reference = nchw(np.asarray(pil)[None])[0].float()
            difference = (ours[k] - reference).abs()
            assert difference.max() <= 1, (mode, channels, k)  # PIL rounds its fixed-point weights
            assert (difference == 0).float().mean() > 0.95, (mode, channels, k)


def timm_boxes(count: int, scale, ratio, size: int = 28) -> np.ndarray:
    random.seed(0)
    image = Image.new("L", (size, size))
    return np.array([RandomResizedCropAndInterpolation.get_params(image, scale, ratio) for _ in range(count)])


@pytest.mark.parametrize(("scale", "ratio"), [
    ((0.08, 1.0), (3 / 4, 4 / 3)),  # the recipes' own
    ((0.997, 1.0), (0.75 ** (1 / 300), (4 / 3) ** (1 / 300))),  # the modern recipe at the proxy's budget
    ((0.9, 1.0), (2.0, 3.0)),  # mostly no fit: timm's centre-crop fallback
])
def test_crop_boxes_are_drawn_as_timm_draws_them(scale, ratio):
    count = 20000
    theirs = timm_boxes(count, scale, ratio)  # (top, left, h, w)
    ours = crop_boxes(count, 28, 28, scale, ratio, torch.Generator().manual_seed(0), CPU).numpy()
    for name, pick in (("area", lambda b: b[:, 2] * b[:, 3]), ("aspect", lambda b: b[:, 3] / b[:, 2]),
                       ("top", lambda b: b[:, 0]), ("left", lambda b: b[:, 1])):
        assert ks_2samp(pick(ours), pick(theirs)).pvalue > 1e-3, name
    assert ours[:, 2:].min() >= 1 and ours[:, :2].min() >= 0  # every box inside the image
    assert np.all(ours[:, 0] + ours[:, 2] <= 28) and np.all(ours[:, 1] + ours[:, 3] <= 28)
    fallback = lambda b: np.mean((b[:, 2] == 14) & (b[:, 3] == 28))  # noqa: E731 (28 / 2.0 tall, centred)
    assert abs(fallback(ours) - fallback(theirs)) < 0.02


def test_flip_rate_and_each_sample_drawn_on_its_own():
    """A batch of one image repeated: flips at the recipe's rate, crops and flips independent across the batch."""
    raw = nchw(images(1, 1)).expand(4000, -1, -1, -1)
    augment = DeviceAugment(augment_block(randaugment=None, random_erasing=0.0, hflip=0.5), 28,
                            (0.0,), (1 / 255,), (0.5,))
    whole = augment(raw, torch.Generator().manual_seed(0))  # crops from the recipe's own range
    assert len(torch.unique(whole.flatten(1), dim=0)) > 3000  # each sample its own crop (of few distinct boxes)
    augment.scale, augment.ratio = (1.0, 1.0), (1.0, 1.0)  # the whole image, flipped or not
    out = augment(raw, torch.Generator().manual_seed(1)).flatten(1)
    image = raw[0].float()
    same, mirror = (out == image.flatten()).all(1), (out == image.flip(-1).flatten()).all(1)
    assert torch.all(same ^ mirror)  # every sample is the image or its mirror
    mirrored = mirror.float()
    assert abs(mirrored.mean().item() - 0.5) < 4 * math.sqrt(0.25 / 4000)
    pairs = torch.corrcoef(torch.stack([mirrored[:-1], mirrored[1:]]))[0, 1]
    assert abs(pairs.item()) < 0.06  # neighbours in the batch flip independently


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_every_randaugment_operation_is_timms_on_pil_images(channels, mode):
    """Each operation at random magnitudes and signs against timm's own PIL operation: identical pixels."""
    rng = np.random.default_rng(channels)
    fill = (73,) if channels == 1 else (120, 110, 100)
    for name in LEVELS:
        for trial in range(3):
            raw = images(1, channels, size=24, seed=trial)[0]
            magnitude, negate = float(rng.uniform(0, 10)), bool(rng.random() > 0.5)
            level = LEVELS[name](torch.tensor([magnitude], dtype=torch.float64), torch.tensor([negate]), {})
            args = () if name in ("AutoContrast", "Equalize", "Invert") else (
                int(level) if name.startswith(("Posterize", "Solarize")) else float(level),)
            reference = auto_augment.NAME_TO_OP[name](Image.fromarray(raw), *args, fillcolor=fill if channels == 3
                                                      else fill[0], resample=PIL_MODES[mode])
            x = nchw(raw[None]).float()
            if name in GEOMETRIC:
                ours = warp(x, affine_matrices([name], torch.tensor([0]), level, 24, 24), torch.tensor(fill), mode)
            else:
                ours = PIXEL_OPS[name](x, level)
            assert torch.equal(ours, nchw(np.asarray(reference)[None]).float()), (name, magnitude, negate)


def test_randaugment_draws_per_sample_as_timm_draws_per_image():
    rand = BatchRandAugment("rand-m9-mstd0.5-inc1-p0.3", (73,), "bicubic")
    n = 30000
    draws = rand.draw(n, torch.Generator().manual_seed(0), CPU)
    assert (rand.layers, len(rand.names)) == (2, 15)
    counts = torch.bincount(draws.op, minlength=15).numpy()
    assert chisquare(counts).pvalue > 1e-3  # every operation equally likely, for each sample apart
    assert abs(draws.fires.float().mean().item() - 0.3) < 0.01
    rotate = draws.level[draws.op == rand.names.index("Rotate")]  # +-(m / 10) 30 degrees, m ~ N(9, 0.5)
    assert abs(rotate.abs().mean().item() - 27.0) < 0.1 and abs((rotate < 0).float().mean().item() - 0.5) < 0.03


def test_compact_and_masked_application_give_the_same_batch():
    """On a CPU each operation runs on the samples that drew it; on a GPU on all, kept where drawn: same pixels."""
    x = nchw(images(64, 3, size=20)).float()
    rand = BatchRandAugment("rand-m9-mstd0.5-inc1-p0.8", (120, 110, 100), "bicubic")
    compact = rand(x, torch.Generator().manual_seed(3), compact=True)
    masked = rand(x, torch.Generator().manual_seed(3), compact=False)
    assert torch.equal(compact, masked) and not torch.equal(compact, x)
    normalised = (x - 128) / 64
    erased = [erase(normalised, 0.5, torch.Generator().manual_seed(4), compact) for compact in (True, False)]
    boxes = [(e != normalised).flatten(1).any(1) for e in erased]
    assert torch.equal(boxes[0], boxes[1]) and 0.35 < boxes[0].float().mean() < 0.65
    assert torch.equal(erased[0] != normalised, erased[1] != normalised)  # the same boxes (their noise is drawn apart)


def test_erasing_boxes_are_timms():
    """One box per erased sample, of timm's areas and shapes (timm's RandomErasing loops over the batch's images)."""
    n = 3000
    torch.manual_seed(0), random.seed(0)
    theirs = RandomErasing(1.0, mode="pixel", device="cpu")(torch.zeros(n, 1, 32, 32)) != 0
    ours = erase(torch.zeros(n, 1, 32, 32), 1.0, torch.Generator().manual_seed(0), compact=True) != 0
    for name, pick in (("area", lambda m: m.flatten(1).sum(1)),
                       ("height", lambda m: m.any(-1).sum((1, 2))), ("top", lambda m: m.any(-1).float().argmax(-1))):
        assert ks_2samp(pick(ours).flatten().numpy(), pick(theirs).flatten().numpy()).pvalue > 1e-3, name


# --- Batches, seeds and resume ------------------------------------------------------------------------------------


def fashion(pipeline: str | None, **changes) -> FashionMNISTData:
    args = dict(num_classes=10, in_chans=3, input_size=32, batch_size=16, num_workers=0, pin_memory=False,
                persistent_workers=False, train_subset=64, val_subset=40, augment=augment_block(**changes), seed=0)
    return FashionMNISTData(root=None, download=False, cache_dir="/tmp/roadmap-test-cache", pipeline=pipeline, **args)


@needs_debian
def test_device_batches_follow_their_place_in_training_and_the_loaders_order():
    device, loader = fashion("device", random_erasing=0.0), fashion("loader", random_erasing=0.0)
    train_set, _ = device.on_device(CPU)
    loader.setup("fit")
    key = BatchKey(epoch=2, rank=0, number=1, indices=(5, 3, 9, 3))
    x, y = train_set[key]
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y, loader.train_set[key][1])  # the same images, in the same order, as the loader path
    assert torch.equal(train_set[key][0], x)
    for other in (key._replace(number=2), key._replace(epoch=3)):
        assert not torch.equal(train_set[other][0], x)
    assert not torch.equal(x[1], x[3])  # image 3 twice in one batch: augmented apart
    assert torch.equal(x[:, 0], x[:, 1])  # grayscale repeated to RGB
    vx, vy = next(iter(device.val_dataloader()))
    lx, ly = next(iter(loader.val_dataloader()))
    assert torch.equal(vy, ly) and torch.allclose(vx, lx, atol=1e-5)  # evaluation: the same images either way


class Seen(lightning.LightningModule):
    """Keeps the batches it trains on; learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def training_step(self, batch, index):
        self.seen[(self.current_epoch, index)] = (batch[0].clone(), batch[1].clone())
        return self.weight * batch[0].mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(dm, root: Path, ckpt_path: str | None = None) -> Seen:
    module = Seen()
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0, default_root_dir=root,
                                callbacks=[ModelCheckpoint(dirpath=root, save_top_k=-1, every_n_epochs=1)])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module


@needs_debian
def test_a_resumed_run_sees_the_device_batches_of_an_uninterrupted_one(tmp_path):
    whole = fit(fashion("device", random_erasing=0.5), tmp_path / "whole").seen
    [after_first] = (tmp_path / "whole").glob("epoch=0-*.ckpt")
    resumed = fit(fashion("device", random_erasing=0.5), tmp_path / "resumed", str(after_first)).seen
    assert sorted(resumed) == [(e, i) for e in (1, 2) for i in range(4)]
    for key, (x, y) in resumed.items():
        assert torch.equal(whole[key][1], y) and torch.equal(whole[key][0], x), key
    assert not torch.equal(whole[(1, 0)][0], whole[(2, 0)][0])


# --- The knob and the record ----------------------------------------------------------------------------------


def test_the_pipeline_knob_defaults_by_device_and_refuses_what_it_cannot_serve(tmp_path):
    assert [fashion(None).pipeline_on(d) for d in ("cpu", "cuda")] == ["loader", "device"]
    assert fashion("device").pipeline_on("cpu") == "device" and fashion("loader").pipeline_on("cuda") == "loader"
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
    folder = {"root": str(tmp_path), "num_classes": 1, "in_chans": 3}
    with pytest.raises(ConfigError, match="data.pipeline='device'.*held in memory"):
        FolderData.check({**folder, "pipeline": "device"})
    with pytest.raises(ConfigError, match="data.pipeline='gpu'"):
        FashionMNISTData.check({**folder, "root": None, "pipeline": "gpu"})
    with pytest.raises(ConfigError, match="randaugment=rand-m9-tweights.*data.pipeline=loader"):
        BatchRandAugment("rand-m9-tweights", (0,), "bicubic")


@needs_debian
def test_a_record_names_its_pipeline_and_a_device_run_trains(tmp_path):
    record = train(tiny_cfg("+step=separate_downsampling", "data=fashion_mnist", "data.pipeline=device",
                            "data.train_subset=64", "data.val_subset=40", "scale.epochs=1"), tmp_path / "device")
    assert record["data_pipeline"] == "device" and record["train_loss"][0] > 0 and record["val_images"] == 40
    assert json.loads((tmp_path / "device" / "result.json").read_text())["data_pipeline"] == "device"
    assert train(tiny_cfg("+trainer.limit_train_batches=1"), tmp_path / "synthetic")["data_pipeline"] == "loader"


@needs_debian
def test_the_data_benchmark_times_both_pipelines(capsys):
    bench(["data", "+step=modern_recipe", "data.train_subset=256", "scale.batch_size=32", "--batches", "3",
           "--rounds", "1"])
    table = capsys.readouterr().out
    speeds = {name: float(value) for name, value in re.findall(r"\| (loader|device) \| (\d+) \|", table)}
    assert set(speeds) == {"loader", "device"} and min(speeds.values()) > 0
