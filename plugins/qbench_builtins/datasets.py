"""Built-in datasets: offline photos, any ImageFolder root, CIFAR-10 (the factories the hooks name).

Every factory is ``factory(*, split, image_size, root="", seed=0, **options)``
and returns a map-style dataset whose items are uint8 tensors (3, H, W).
Each gives three disjoint splits: ``train``, ``val`` (selection: held-out
curves, tuning, early stopping) and ``test`` (final numbers only); where a
dataset has no test split (``photos`` with ``test_fraction = 0``, a folder
without one) asking for it is one clear ``ConfigError``.  Each dataset lives
in its own module; this one gathers them.

Recipes follow the GSQ paper's data handling (arXiv 2412.02632, App. B):
resize the shorter side, centre crop, for ImageNet-style roots.
"""

from __future__ import annotations

from qbench_builtins.cifar10 import CIFAR10Dataset
from qbench_builtins.imagefolder import ImageFolderDataset
from qbench_builtins.images import (
    IMAGE_EXTENSIONS,
    SIXTEEN_BIT_MODES,
    SPLITS,
    check_common,
    find_images,
    resize_center_crop,
    skimage_data_dir,
    to_rgb8,
    to_tensor,
)
from qbench_builtins.photos import PHOTO_FILES, Photos

# the names this module had before it was split, still imported by the webdataset dataset and scripts
_check_common, _to_tensor, _find_images = check_common, to_tensor, find_images

__all__ = ["IMAGE_EXTENSIONS", "PHOTO_FILES", "SIXTEEN_BIT_MODES", "SPLITS", "CIFAR10Dataset", "ImageFolderDataset",
           "Photos", "check_common", "find_images", "resize_center_crop", "skimage_data_dir", "to_rgb8", "to_tensor"]
