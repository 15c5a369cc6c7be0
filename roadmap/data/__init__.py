"""Data modules: Fashion-MNIST (the embedded default), CIFAR-10/100, any ImageFolder (ImageNet), what timm's readers
read in place, and synthetic tensors; ImageNet's forms turned into class folders, and a pre-resized copy of an
ImageFolder. May import roadmap's top level only.

One module per concern: `sampling` (subsets, the training order, DDP shares), `transforms` (timm's augmentations,
per image and per batch), `datasets` (in-memory arrays, training batches, evaluation images), `device` and
`randaugment` (the data set held on the device, augmented there), `module` (the Lightning data module every data set
shares), then one module per source, `imagenet` (ImageNet as users hold it, prepared and checked) and `prepare`.
Configs name the classes here (`_target_: roadmap.data.FashionMNISTData`).
"""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "cifar": ("CIFARData",),
    "fashion_mnist": ("DEBIAN_FASHION_MNIST", "FASHION_MNIST_FILES", "FashionMNISTData"),
    "folder": ("FolderData", "count_classes"),
    "module": ("PIPELINES", "ImageData"),
    "prepare": ("resize_folder",),
    "sampling": ("PADDING_LABEL", "balanced_subset"),
    "synthetic": ("SyntheticData",),
    "transforms": ("BatchFinish", "image_transform", "seeded", "to_batch"),
    "timm_reader": ("TimmData",),
})
