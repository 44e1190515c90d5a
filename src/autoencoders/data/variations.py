"""The MNIST variations (Larochelle, Erhan, Courville, Bergstra & Bengio, ICML 2007), used
by Vincent et al. (ICML 2008, Table 1), generated locally from MNIST.

Splits as in the benchmark: 12,000 train images (the data layer carves the 2,000-image
validation split from them with ``valid_size = 2000``, leaving 10,000 for training) and
50,000 test images. The 62,000 source digits are drawn once, without replacement, from
MNIST's 70,000 (train and test files together) with the fixed seed :data:`GENERATION_SEED`;
every variation uses the same digits in the same order, so the same row is the same digit.

Recipes (Larochelle et al. 2007, section 4.1):

* ``mnist-basic``: the digits as they are.
* ``mnist-rot``: each digit rotated by an angle uniform in [0, 2 pi) (bilinear, about the
  image centre).
* ``mnist-bg-rand``: a background of pixels uniform in [0, 1]; a pixel is
  ``max(digit, background)``.
* ``mnist-bg-img``: the benchmark pastes 28x28 patches of natural images (20 pictures from
  the internet). No natural images ship with this project, so the generated version uses
  smooth random textures instead (a sum of four random oriented sinusoidal gratings,
  rescaled to [0, 1]); pixel = ``max(digit, texture)``. Numbers on it are "generated
  bg-img", not the benchmark's.
* ``mnist-rot-bg-img``: rotation, then the textured background.

The official ``.amat`` files (``mnist_basic.zip``, ``mnist_rotation_new.zip``, ...) are not
registered as datasets yet (their checksums are not known offline); :func:`read_amat` parses
one (plain or inside a zip) for use by hand. Their numbers are the benchmark's, the generated
ones are not, and the two must not be mixed up.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from autoencoders.data.mnist import MNIST

GENERATION_SEED = 2007
N_TRAIN = 12000  # 10,000 train + 2,000 valid
N_TEST = 50000


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre (bilinear, zeros outside).

    Args:
        images: ``(N, H, W)`` float in [0, 1].
        angles: ``(N,)`` radians.

    Returns:
        ``(N, H, W)`` float in [0, 1].
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1),
                         torch.stack([sin, cos, zero], -1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, [images.shape[0], 1, *images.shape[1:]], align_corners=False)
    out = F.grid_sample(images.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.squeeze(1).clamp(0.0, 1.0)


def textures(n: int, size: int, generator: torch.Generator, n_gratings: int = 4
             ) -> torch.Tensor:
    """Smooth random textures ``(n, size, size)`` in [0, 1]: sums of sinusoidal gratings
    with random orientation, spatial frequency (1 to 6 cycles per image) and phase, each
    rescaled to span [0, 1]."""
    coords = torch.arange(size, dtype=torch.float32) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (size, size)
    angle = torch.rand(n, n_gratings, 1, 1, generator=generator) * math.pi
    freq = 1.0 + 5.0 * torch.rand(n, n_gratings, 1, 1, generator=generator)
    phase = torch.rand(n, n_gratings, 1, 1, generator=generator) * 2 * math.pi
    wave = torch.sin(2 * math.pi * freq * (xx * torch.cos(angle) + yy * torch.sin(angle))
                     + phase).sum(1)  # (n, size, size)
    lo = wave.amin((1, 2), keepdim=True)
    hi = wave.amax((1, 2), keepdim=True)
    return (wave - lo) / (hi - lo).clamp_min(1e-6)


def make_variation(kind: str, digits: torch.Tensor, generator: torch.Generator
                   ) -> torch.Tensor:
    """Apply one recipe (see the module docstring) to ``(N, 28, 28)`` digits in [0, 1]."""
    x = digits
    if kind in ("rot", "rot-bg-img"):
        x = rotate(x, torch.rand(x.shape[0], generator=generator) * 2 * math.pi)
    if kind == "bg-rand":
        x = torch.maximum(x, torch.rand(x.shape, generator=generator))
    if kind in ("bg-img", "rot-bg-img"):
        x = torch.maximum(x, textures(x.shape[0], x.shape[-1], generator))
    return x


def read_amat(path: str | Path, member: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse an official MNIST-variations ``.amat`` file: one example per line, 784 pixel
    values in [0, 1] (row-major, as stored) and then the label.

    Args:
        path: a ``.amat`` file, or a ``.zip`` holding it.
        member: for a zip, the name of the ``.amat`` inside (e.g.
            ``"mnist_background_random_test.amat"``); may be omitted when it holds one.

    Returns:
        Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8.

    Raises:
        ValueError: the zip holds several ``.amat`` files and ``member`` is not given, or a
            line does not have 785 values.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".amat")]
            if member is None:
                if len(names) != 1:
                    raise ValueError(f"{path} holds {len(names)} .amat files ({', '.join(names)}"
                                     "); name the one to read with member=...")
                member = names[0]
            text = z.read(member).decode()
    else:
        text = path.read_text()
    values = np.loadtxt(io.StringIO(text), dtype=np.float32, ndmin=2)
    if values.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 values per line (784 pixels and a label), got "
                         f"{values.shape[1]}.")
    images = (values[:, :784].reshape(-1, 28, 28) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return images, values[:, 784].astype(np.uint8)


class _GeneratedVariation:
    """A variation generated from MNIST's files (so it needs no other download)."""

    name: ClassVar[str]
    kind: ClassVar[str]
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    num_classes: ClassVar[int | None] = 10
    official_splits: ClassVar[tuple[str, ...]] = ("train", "test")
    source = MNIST.source

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """MNIST's files -> ``{"train": 12,000, "test": 50,000}`` images (uint8) and labels."""
        mnist = MNIST.read(paths)
        images = np.concatenate([mnist["train"][0], mnist["test"][0]])
        labels = np.concatenate([mnist["train"][1], mnist["test"][1]])
        gen = torch.Generator().manual_seed(GENERATION_SEED)
        rows = torch.randperm(len(images), generator=gen)[: N_TRAIN + N_TEST].numpy()
        digits = torch.from_numpy(images[rows].astype(np.float32) / 255.0)
        gen = torch.Generator().manual_seed(GENERATION_SEED + 1)  # same noise per recipe
        x = make_variation(cls.kind, digits, gen)
        x = (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
        y = labels[rows]
        return {"train": (x[:N_TRAIN], y[:N_TRAIN]), "test": (x[N_TRAIN:], y[N_TRAIN:])}


class MNISTBasic(_GeneratedVariation):
    name = "mnist-basic"
    kind = "basic"


class MNISTRot(_GeneratedVariation):
    name = "mnist-rot"
    kind = "rot"


class MNISTBgRand(_GeneratedVariation):
    name = "mnist-bg-rand"
    kind = "bg-rand"


class MNISTBgImg(_GeneratedVariation):
    name = "mnist-bg-img"
    kind = "bg-img"


class MNISTRotBgImg(_GeneratedVariation):
    name = "mnist-rot-bg-img"
    kind = "rot-bg-img"


VARIATIONS: dict[str, type] = {cls.name: cls for cls in (
    MNISTBasic, MNISTRot, MNISTBgRand, MNISTBgImg, MNISTRotBgImg)}
