"""ImageNet-1k as downloaded into the class folders `data=imagenet` reads, checked (roadmap/data/imagenet.py):

    python scripts/prepare_imagenet.py --from archives SOURCE OUT [--subset imagenette|imagenet100|LIST.txt]
    python scripts/prepare_imagenet.py --from kaggle SOURCE OUT [--subset ...]
    python scripts/prepare_imagenet.py --check OUT [--subset ...]
"""

import sys

from roadmap.data.imagenet import main

if __name__ == "__main__":
    sys.exit(main())
