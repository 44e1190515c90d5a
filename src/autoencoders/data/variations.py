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
* ``mnist-bg-img``: the benchmark pastes a random 28x28 grey patch of a natural image (from
  20 pictures taken from the internet) behind each digit. Here the pictures are the
  photographs that scikit-image bundles in its wheel (``skimage/data``, read from the
  installed package, never downloaded): :data:`PHOTOS`, each public domain or CC0 by the
  skimage docstrings (see below). Each is made grey with Pillow's ``convert("L")`` (ITU-R
  601-2 luma, integer arithmetic) and checked against its SHA-256, so the same seed gives
  the same images with any scikit-image release that ships these files. Each digit gets one
  photo (uniform) and a patch position (uniform); pixel = ``max(digit, patch)``. scikit-image
  is an optional dependency: ``pip install "autoencoders[photos]"``. Numbers on it are
  "generated from MNIST + scikit-image's photographs", not the benchmark's (other pictures).
* ``mnist-rot-bg-img``: rotation, then the photo background.

The photographs (scikit-image 0.26 ``skimage/data``; licence as its ``skimage.data``
docstrings state): astronaut (Eileen Collins, NASA: public domain), brick and gravel
(CC0Textures: CC0), camera (Lav Varshney: CC0), chelsea (Stefan van der Walt: CC0),
clock_motion (Stefan van der Walt: public domain), coffee (Rachel Michetti: CC0), coins
(Brooklyn Museum via Wikipedia: no known copyright restrictions), grass (CC0), rocket
(SpaceX: public domain). The Hubble deep field, also bundled, is left out: mostly black
sky, it would make near-empty backgrounds.

:func:`textures` (random sinusoidal gratings) is kept for experiments that want a
background without the photos.

The official ``.amat`` files (``mnist_basic.zip``, ``mnist_rotation_new.zip``, ...) are not
registered as datasets yet (their checksums are not known offline); :func:`read_amat` parses
one (plain or inside a zip) for use by hand. Their numbers are the benchmark's, the generated
ones are not, and the two must not be mixed up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from autoencoders.data.mnist import MNIST
from autoencoders.errors import DataCorruptError, DataMissingError

GENERATION_SEED = 2007
N_TRAIN = 12000  # 10,000 train + 2,000 valid
N_TEST = 50000
PHOTOS_EXTRA = 'pip install "autoencoders[photos]"'
# scikit-image's bundled photographs (file in skimage/data -> SHA-256 of the file)
PHOTOS: dict[str, str] = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "brick.png": "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
    "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "clock_motion.png": "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "coins.png": "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    "grass.png": "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
    "gravel.png": "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
}


def photo_folder() -> Path:
    """scikit-image's ``skimage/data`` folder, found without importing scikit-image.

    Raises:
        DataMissingError: scikit-image is not installed (says how to install it).
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise DataMissingError(
            "mnist-bg-img and mnist-rot-bg-img put the digits on patches of the photographs "
            "that scikit-image ships, and scikit-image is not installed. Install it with "
            f"`{PHOTOS_EXTRA}` (or `pip install scikit-image`).")
    return Path(spec.origin).parent / "data"


def load_photos(folder: str | Path | None = None, files: dict[str, str] | None = None
                ) -> list[np.ndarray]:
    """The background photographs as grey ``(H, W)`` uint8 arrays, in ``files``' order.

    Args:
        folder: where the files are (default: :func:`photo_folder`).
        files: file name -> SHA-256 (default :data:`PHOTOS`).

    Raises:
        DataMissingError: scikit-image, or one of the files, is missing.
        DataCorruptError: a file is not the one the data set was defined with.
    """
    folder = Path(folder) if folder is not None else photo_folder()
    files = PHOTOS if files is None else files
    out = []
    for name, sha in files.items():
        path = folder / name
        if not path.is_file():
            raise DataMissingError(
                f"{path} is missing: the installed scikit-image does not bundle the photograph "
                f"{name}. Reinstall it (`{PHOTOS_EXTRA}`).")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise DataCorruptError(
                f"{path} differs from the photograph the generated bg-img data sets were "
                f"defined with (SHA-256 {sha}); this scikit-image release changed it, so the "
                "backgrounds would differ. Install scikit-image 0.26 (`pip install "
                "scikit-image==0.26.0`).")
        with Image.open(io.BytesIO(data)) as im:
            out.append(np.asarray(im.convert("L"), dtype=np.uint8))
    return out


def photo_patches(n: int, size: int, photos: list[np.ndarray], generator: torch.Generator
                  ) -> torch.Tensor:
    """``n`` random ``size`` x ``size`` patches ``(n, size, size)`` in [0, 1]: each of a
    photo drawn uniformly, at a position drawn uniformly inside it.

    Random numbers are drawn in a fixed order (the photo of every patch, then per photo
    its patches' rows and columns), so a generator state gives the same patches."""
    which = torch.randint(len(photos), (n,), generator=generator)
    out = torch.empty(n, size, size)
    offsets = torch.arange(size)
    for i, photo in enumerate(photos):
        rows = (which == i).nonzero().squeeze(1)
        h, w = photo.shape
        if h < size or w < size:
            raise ValueError(f"photo {i} is {h}x{w}, smaller than a {size}x{size} patch.")
        top = torch.randint(h - size + 1, (len(rows),), generator=generator)
        left = torch.randint(w - size + 1, (len(rows),), generator=generator)
        img = torch.from_numpy(photo.astype(np.float32) / 255.0)
        out[rows] = img[(top[:, None, None] + offsets[None, :, None]),
                        (left[:, None, None] + offsets[None, None, :])]
    return out


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


def make_variation(kind: str, digits: torch.Tensor, generator: torch.Generator,
                   photos: list[np.ndarray] | None = None) -> torch.Tensor:
    """Apply one recipe (see the module docstring) to ``(N, 28, 28)`` digits in [0, 1];
    ``photos`` (grey uint8 arrays) are the backgrounds of bg-img and rot-bg-img (default:
    :func:`load_photos`)."""
    x = digits
    if kind in ("rot", "rot-bg-img"):
        x = rotate(x, torch.rand(x.shape[0], generator=generator) * 2 * math.pi)
    if kind == "bg-rand":
        x = torch.maximum(x, torch.rand(x.shape, generator=generator))
    if kind in ("bg-img", "rot-bg-img"):
        photos = load_photos() if photos is None else photos
        x = torch.maximum(x, photo_patches(x.shape[0], x.shape[-1], photos, generator))
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
