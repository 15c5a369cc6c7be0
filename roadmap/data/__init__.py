"""Data modules: Fashion-MNIST (the embedded default), CIFAR-10/100, any ImageFolder (ImageNet), what timm's readers
read in place, and synthetic tensors.

One module per concern: `sampling` (subsets, the training order, DDP shares), `transforms` (timm's augmentations,
per image and per batch), `datasets` (in-memory arrays, training batches, evaluation images), `module` (the
Lightning data module every data set shares), then one module per source. Configs name the classes here
(`_target_: roadmap.data.FashionMNISTData`).
"""

from roadmap.data.cifar import CIFARData
from roadmap.data.fashion_mnist import DEBIAN_FASHION_MNIST, FASHION_MNIST_FILES, FashionMNISTData
from roadmap.data.folder import FolderData, count_classes
from roadmap.data.module import ImageData
from roadmap.data.sampling import PADDING_LABEL, balanced_subset
from roadmap.data.synthetic import SyntheticData
from roadmap.data.timm_reader import TimmData

__all__ = [
    "CIFARData", "DEBIAN_FASHION_MNIST", "FASHION_MNIST_FILES", "FashionMNISTData", "FolderData", "ImageData",
    "PADDING_LABEL", "SyntheticData", "TimmData", "balanced_subset", "count_classes",
]
