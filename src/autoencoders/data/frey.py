"""Frey Face: 1965 grey images (28 x 20 pixels) of Brendan Frey's face, from a video.

Used by Kingma & Welling (2014, arXiv:1312.6114, Sec. 5) for the continuous-data VAE.
The MATLAB file holds one variable ``ff``, uint8 of shape (560, 1965): one column per
image, each the 28 x 20 image in row-major order. There is no official split and no label.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.io

from autoencoders.data.download import FileSpec, Source
from autoencoders.errors import DataCorruptError

HEIGHT, WIDTH = 28, 20


def read_frey(path: str | Path) -> np.ndarray:
    """Read ``frey_rawface.mat``.

    Args:
        path: The MATLAB v5 file.

    Returns:
        Images ``(n, 28, 20)`` uint8, upright faces; ``n = 1965`` for the official file.

    Raises:
        DataCorruptError: The file is not a readable .mat, lacks ``ff``, or ``ff`` is not
            uint8 of shape ``(560, n)``.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"Frey Face file {path} does not exist.")
    try:
        contents = scipy.io.loadmat(str(path), variable_names=["ff"])
    except Exception as err:  # scipy raises many types on bad bytes (MatReadError, OSError, ...)
        raise DataCorruptError(
            f"{path} is not a readable MATLAB file ({type(err).__name__}: {err}); it is "
            f"probably truncated. Delete it and download it again."
        ) from err
    if "ff" not in contents:
        raise DataCorruptError(f"{path} has no variable 'ff'; it is not frey_rawface.mat.")
    ff = contents["ff"]
    if ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != HEIGHT * WIDTH:
        raise DataCorruptError(
            f"{path}: variable 'ff' is {ff.dtype} of shape {ff.shape}, expected uint8 of "
            f"shape ({HEIGHT * WIDTH}, n) (official: (560, 1965))."
        )
    return np.ascontiguousarray(ff.T).reshape(-1, HEIGHT, WIDTH)  # (n, 560) -> (n, 28, 20)


class FreyFace:
    """Frey Face, all 1965 images in the official "train" split; no labels."""

    name: ClassVar[str] = "frey"
    image_shape: ClassVar[tuple[int, int, int]] = (1, HEIGHT, WIDTH)
    num_classes: ClassVar[int | None] = None
    official_splits: ClassVar[tuple[str, ...]] = ("train",)
    # No official checksum exists; this is the MD5 of the file at the URL (see SOURCES.md).
    source: ClassVar[Source] = Source(
        dataset="frey",
        folder="frey",
        files=(
            FileSpec(
                "frey_rawface.mat",
                ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
                1100584,
                "5aeb024d42b8a6091f30e5eb18c8a48d",
            ),
        ),
    )

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, None]]:
        """Parse the file: ``{"train": (images (1965, 28, 20) uint8, None)}``."""
        images = read_frey(paths["frey_rawface.mat"])
        images.flags.writeable = False  # shared through the in-process cache
        return {"train": (images, None)}
