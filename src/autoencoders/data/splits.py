"""A split of a data set (:class:`ImageData`) and how the rows of each split are chosen.

Below the data set readers, which all return :class:`ImageData`: the package's
``__init__`` imports the readers, and the readers import this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoencoders.data.storage import StreamedImages
from autoencoders.errors import ConfigError

TEST_SPLIT_SEED = 2014  # carves test out of train for datasets without an official test split


@dataclass
class ImageData:
    """One split of a dataset.

    Attributes:
        name: Dataset name, e.g. ``"mnist"``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        x: Images ``(N, C, H, W)`` float32 in [0, 1] (MNIST ``(N, 1, 28, 28)``, Frey
            ``(N, 1, 28, 20)``); in {0, 1} when binarised. A
            :class:`~autoencoders.data.storage.StreamedImages` instead when the split
            streams from a memory-mapped cache (``storage``): index it to get tensors.
        y: Labels ``(N,)`` int64, or ``None`` when the dataset has none (Frey).
        binarize: ``"none"`` (grey), ``"static"`` (``x`` is binary) or ``"dynamic"``
            (``x`` is grey; the trainer draws binary images from it every epoch).
    """

    name: str
    split: str
    x: torch.Tensor | StreamedImages
    y: torch.Tensor | None
    binarize: str

    def __len__(self) -> int:
        return self.x.shape[0]


def _rows(
    cls: type,
    official: dict,
    split: str,
    valid_size: int,
    test_size: int,
    seed: int,
) -> tuple[str, np.ndarray]:
    """Which official split and which of its rows (sorted) make up ``split``."""
    n = len(official["train"][0])
    has_test = "test" in official
    if has_test and test_size:
        raise ConfigError(
            f"test_size must be 0 for {cls.name}, which has an official test split; "
            f"got test_size={test_size}."
        )
    if has_test and split == "test":
        return "test", np.arange(len(official["test"][0]))
    if test_size >= n:
        raise ConfigError(
            f"test_size={test_size} leaves no training images: {cls.name} has {n} images, "
            f"so test_size must be at most {n - 1}."
        )
    if valid_size + test_size >= n:
        carved = f", {test_size} of which go to test" if test_size else ""
        raise ConfigError(
            f"valid_size={valid_size} leaves no training images: {cls.name} has {n} official "
            f"training images{carved}, so valid_size must be at most {n - 1 - test_size}."
        )
    fixed = torch.randperm(n, generator=torch.Generator().manual_seed(TEST_SPLIT_SEED))
    test, pool = fixed[:test_size], fixed[test_size:].sort().values
    if split == "test":
        return "train", test.sort().values.numpy()
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    chosen = pool[order[:valid_size]] if split == "valid" else pool[order[valid_size:]]
    return "train", chosen.sort().values.numpy()
