"""dSprites (Matthey et al. 2017): 2-D shapes from five ground-truth factors.

The official file ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds every
combination of the factors once, 3 x 6 x 40 x 32 x 32 = 737,280 binary 64 x 64 images,
in row-major factor order (posY varies fastest), so an image's row is the mixed-radix
number of its factor classes (:meth:`DSprites.index_of`). The constant colour factor is
dropped here, as in disentanglement_lib.

Factors (class ``i`` -> value), as in the official README:

==========  =====  =================================================
shape       3      square, ellipse, heart (official values 1, 2, 3)
scale       6      linspace(0.5, 1, 6)
orientation 40     linspace(0, 2 pi, 40) radians, counter-clockwise as displayed
pos_x       32     linspace(0, 1, 32), left to right
pos_y       32     linspace(0, 1, 32), top to bottom
==========  =====  =================================================

Two data sets are registered in :data:`autoencoders.data.DATASETS`:

* ``"dsprites"``: the official npz (download verified by MD5). Only the ``imgs`` and
  ``latents_classes`` arrays are read, with ``allow_pickle=False``: the ``metadata`` entry
  is a pickle and is never loaded.
* ``"dsprites-generated"``: the same images drawn by :func:`render`, a vectorised
  rasteriser whose shape constants were fitted to the real subsets in the shared data
  folder (``benchmarks/dsprites_fidelity.py`` prints how close it is: mean IoU per shape
  and scale, exact-match rate). Needs no download.

Both draw ``data.size`` images (0: all 737,280) with the fixed seed :data:`SUBSET_SEED`,
then carve ``test_size`` and ``valid_size`` images out of them like every data set without
an official test split. The metrics in :mod:`autoencoders.evaluation.disentanglement`
use only the ground-truth API of :class:`DSprites` and draw fresh factor combinations.

All 737,280 images are 12.1 GB as float32: with ``data.storage = "auto"`` such a split
streams from a uint8 cache (``dsprites-<n>-<rows>-<version>.npy`` in the user cache, 3 GB
for the full set, drawn or unpacked block by block), see :mod:`autoencoders.data.storage`.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from autoencoders.data.download import FileSpec, Source, ensure
from autoencoders.data.splits import ImageData, _rows
from autoencoders.data.storage import (
    StreamedImages,
    cache_dir,
    cached_uint8,
    over_budget,
    report_streaming,
)
from autoencoders.errors import ConfigError, DataCorruptError

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)  # product 737,280
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
N_IMAGES = math.prod(FACTOR_SIZES)
IMAGE_SIZE = 64
SUBSET_SEED = 2017  # which images make up a ``data.size`` subset; independent of training
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
# The same MD5 is given by several independent loaders (e.g. the torchvision-style datasets
# in the search index); the official repository publishes none. Size: not published.
NPZ_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"

# ----------------------------------------------------------------- rendering constants
# Fitted to 600 images per shape of the real grid subset (dsprites_downsampled.npz) by a
# soft-rasteriser fit (benchmarks/dsprites_fit.py), then checked on both real subsets
# (benchmarks/dsprites_fidelity.py: mean IoU 0.987). Units: pixels at scale 1; a pixel is
# on when its centre lies inside the shape.
CENTRE_OFFSET = 15.5  # pixel index of the sprite centre at pos = 0 ...
CENTRE_SPAN = 32.0  # ... and how far it moves from pos = 0 to pos = 1
SQUARE_HALF = 9.639  # half side
ELLIPSE_AXES = (12.818, 7.301)  # semi-axes (horizontal, vertical at orientation 0)
# heart: two discs (centres (+-lobe_x, lobe_y), radius) over a kite whose lower sides meet
# at the tip with slope ``tip_slope`` (|u| = slope * (v - tip)) and whose upper sides meet
# at ``top`` between the lobes (|u| = top_slope * (top - v))
HEART = {"lobe_x": 4.692, "lobe_y": 4.179, "radius": 5.005, "tip": -8.717,
         "tip_slope": 0.936, "top": 5.880, "top_slope": 1.717}
BIAS = (-0.043, -0.075, -0.026)  # per shape: pixels added to the outline (< 0: shrink)


def factor_values() -> list[np.ndarray]:
    """The value of each class of each factor, in :data:`FACTOR_NAMES` order."""
    return [np.arange(1.0, 4.0), np.linspace(0.5, 1.0, 6), np.linspace(0.0, 2 * math.pi, 40),
            np.linspace(0.0, 1.0, 32), np.linspace(0.0, 1.0, 32)]


def _shape_distance(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance-like value, < 0 inside, of canonical points ``(u, v)`` (y up) to
    shape ``shape`` (0 square, 1 ellipse, 2 heart); ``u, v`` are pixels divided by the
    scale, any shape."""
    if shape == 0:
        return torch.maximum(u.abs(), v.abs()) - SQUARE_HALF
    if shape == 1:
        a, b = ELLIPSE_AXES
        r = torch.sqrt((u / a) ** 2 + (v / b) ** 2).clamp_min(1e-6)
        grad = torch.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / r  # |grad r|
        return (r - 1.0) / grad.clamp_min(1e-6)  # first-order distance to the outline
    h = HEART
    lobe = torch.sqrt((u.abs() - h["lobe_x"]) ** 2 + (v - h["lobe_y"]) ** 2) - h["radius"]
    s1, s2 = h["tip_slope"], h["top_slope"]
    lower = (u.abs() - (v - h["tip"]) * s1) / math.sqrt(1 + s1**2)
    upper = (u.abs() - (h["top"] - v) * s2) / math.sqrt(1 + s2**2)
    return torch.minimum(lobe, torch.maximum(lower, upper))


@torch.no_grad()
def render(factors: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Draw dSprites images from factor classes, vectorised over the batch.

    Each pixel centre is mapped into the sprite's own frame (translate to the centre,
    rotate by -orientation, divide by the scale) and tested against the shape outline.

    Args:
        factors: ``(N, 5)`` integer classes in :data:`FACTOR_NAMES` order.
        chunk: images per vectorised block (memory ~ 40 bytes x 4096 pixels x chunk).

    Returns:
        ``(N, 64, 64)`` uint8 in {0, 1}, row 0 at the top, like the official ``imgs``.
    """
    factors = torch.as_tensor(factors, dtype=torch.long).reshape(-1, len(FACTOR_SIZES))
    out = torch.empty(factors.shape[0], IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    pix = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    bias = torch.tensor(BIAS)
    for start in range(0, factors.shape[0], chunk):
        f = factors[start:start + chunk]
        scale = (0.5 + 0.1 * f[:, 1].float()).view(-1, 1, 1)
        theta = (f[:, 2].double() * (2 * math.pi / 39)).float().view(-1, 1, 1)
        cx = (CENTRE_OFFSET + CENTRE_SPAN * f[:, 3].float() / 31).view(-1, 1, 1)
        cy = (CENTRE_OFFSET + CENTRE_SPAN * f[:, 4].float() / 31).view(-1, 1, 1)
        dx = pix.view(1, 1, -1) - cx  # (n, 1, W)
        dy = cy - pix.view(1, -1, 1)  # (n, H, 1), y up
        cos, sin = torch.cos(theta), torch.sin(theta)
        u = (cos * dx + sin * dy) / scale  # (n, H, W): rotate by -theta
        v = (cos * dy - sin * dx) / scale
        block = torch.empty(u.shape, dtype=torch.uint8)
        for shape in range(len(SHAPES)):  # each image gets only its own shape's test
            m = f[:, 0] == shape
            if bool(m.any()):
                dist = _shape_distance(shape, u[m], v[m]) * scale[m] - bias[shape]
                block[m] = (dist <= 0).to(torch.uint8)
        out[start:start + chunk] = block
    return out


class DSprites:
    """The ground-truth-factor API every disentanglement metric uses.

    Attributes:
        factor_names: ``("shape", "scale", "orientation", "pos_x", "pos_y")``.
        factor_sizes: ``(3, 6, 40, 32, 32)``; product 737,280.
        num_factors: 5.
        image_shape: ``(1, 64, 64)``.

    Args:
        images: the official ``imgs`` array ``(737280, 64, 64)`` uint8 to look images up
            in; ``None`` draws them with :func:`render` (procedural dSprites).
    """

    factor_names: ClassVar[tuple[str, ...]] = FACTOR_NAMES
    factor_sizes: ClassVar[tuple[int, ...]] = FACTOR_SIZES
    num_factors: ClassVar[int] = len(FACTOR_SIZES)
    image_shape: ClassVar[tuple[int, int, int]] = (1, IMAGE_SIZE, IMAGE_SIZE)
    # mixed-radix place values: (245760, 40960, 1024, 32, 1)
    bases: ClassVar[tuple[int, ...]] = tuple(
        math.prod(FACTOR_SIZES[i + 1:]) for i in range(len(FACTOR_SIZES)))

    def __init__(self, images: np.ndarray | None = None):
        if images is not None and images.shape != (N_IMAGES, IMAGE_SIZE, IMAGE_SIZE):
            raise DataCorruptError(f"dSprites images have shape {images.shape}; expected "
                                   f"({N_IMAGES}, {IMAGE_SIZE}, {IMAGE_SIZE}).")
        self.images = images

    def sample_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` factor-class vectors drawn uniformly and independently: ``(n, 5)`` int64."""
        cols = [torch.randint(s, (n,), generator=generator) for s in self.factor_sizes]
        return torch.stack(cols, dim=1)

    def images_from_factors(self, factors: torch.Tensor) -> torch.Tensor:
        """Images of the given factor classes ``(N, 5)``: ``(N, 1, 64, 64)`` float32 in {0, 1}."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        if self.images is None:
            x = _render_cached(factors)
        else:
            x = torch.from_numpy(self.images[self.index_of(factors).numpy()])
        return x.unsqueeze(1).to(torch.float32)  # (N, 64, 64) -> (N, 1, 64, 64)

    def sample_observations_from_factors(self, factors: torch.Tensor,
                                         generator: torch.Generator | None = None
                                         ) -> torch.Tensor:
        """Same as :meth:`images_from_factors`: dSprites has no observation noise, so
        ``generator`` is unused (kept for the disentanglement_lib signature)."""
        return self.images_from_factors(factors)

    def index_of(self, factors: torch.Tensor) -> torch.Tensor:
        """Row in the official file of each factor vector: ``(N, 5) -> (N,)`` int64."""
        factors = torch.as_tensor(factors, dtype=torch.long)
        sizes = torch.tensor(self.factor_sizes)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"factors must have shape (N, {self.num_factors}), got "
                             f"{tuple(factors.shape)}.")
        if bool(((factors < 0) | (factors >= sizes)).any()):
            raise ValueError(f"factor classes out of range; sizes are {self.factor_sizes}.")
        return (factors * torch.tensor(self.bases)).sum(1)

    def factors_of(self, index: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`index_of`: ``(N,) -> (N, 5)`` int64."""
        index = torch.as_tensor(index, dtype=torch.long)
        if bool(((index < 0) | (index >= N_IMAGES)).any()):
            raise ValueError(f"dSprites indices must lie in [0, {N_IMAGES}).")
        bases = torch.tensor(self.bases)
        return (index[:, None] // bases) % torch.tensor(self.factor_sizes)


# ----------------------------------------------------------------------- file readers


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``imgs`` and ``latents_classes`` from a dSprites npz, never unpickling.

    Works for the official file and for the subsets in the shared data folder
    (``dsprites_subset.npz``, ``dsprites_downsampled.npz``), whose ``latents_classes``
    have 5 columns (colour dropped) instead of 6; the ``metadata`` entry, a pickle, is
    not read.

    Returns:
        ``imgs`` ``(N, 64, 64)`` uint8 in {0, 1} and the factor classes ``(N, 5)`` int64.
        For the shared grid subset the classes are its own grid indices; use
        ``original_dataset_indices`` with :meth:`DSprites.factors_of` for official ones.

    Raises:
        DataCorruptError: the file is not a readable npz with those arrays.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            imgs, classes = z["imgs"], z["latents_classes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataCorruptError(f"{path} is not a readable dSprites npz with 'imgs' and "
                               f"'latents_classes' ({type(err).__name__}: {err}). Delete "
                               "it and download it again.") from err
    if classes.shape[1] == 6:
        classes = classes[:, 1:]  # drop the constant colour factor
    if imgs.ndim != 3 or imgs.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(classes) != len(imgs):
        raise DataCorruptError(f"{path}: imgs {imgs.shape} / latents_classes "
                               f"{classes.shape} are not dSprites arrays.")
    return imgs, classes.astype(np.int64)


def read_npz_rows(path: str | Path, rows: np.ndarray, block: int = 8192,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``rows`` (sorted) of ``imgs`` in an npz, streamed: never holds the 3 GB array.

    Args:
        out: where to write them (e.g. a memory-mapped cache); default a new array.

    Returns:
        ``(len(rows), 64, 64)`` uint8 (``out`` when given).
    """
    if out is None:
        out = np.empty((len(rows), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    try:
        with zipfile.ZipFile(path) as zf, zf.open("imgs.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            if fortran or dtype != np.uint8 or shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataCorruptError(f"{path}: imgs is {dtype} {shape}, not dSprites.")
            row_bytes = IMAGE_SIZE * IMAGE_SIZE
            done = 0
            for start in range(0, shape[0], block):
                stop = min(start + block, shape[0])
                buf = np.frombuffer(f.read((stop - start) * row_bytes), np.uint8)
                buf = buf.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)  # (block, 64, 64)
                hi = np.searchsorted(rows, stop)
                out[done:hi] = buf[rows[done:hi] - start]
                done = hi
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise DataCorruptError(f"{path} could not be read ({type(err).__name__}: {err}). "
                               "Delete it and download it again.") from err
    return out


# --------------------------------------------------------------------- data sets


class _DSpritesBase:
    image_shape: ClassVar[tuple[int, int, int]] = (1, IMAGE_SIZE, IMAGE_SIZE)
    num_classes: ClassVar[int | None] = None
    official_splits: ClassVar[tuple[str, ...]] = ("train",)

    @classmethod
    def subset_rows(cls, size: int) -> np.ndarray:
        """Sorted official rows of a ``size``-image subset (0: all), fixed seed."""
        if size < 0 or size > N_IMAGES:
            raise ConfigError(f"data.size = {size} is out of range for dSprites: expected "
                              f"0 (all {N_IMAGES:,}) or 1..{N_IMAGES:,}.")
        if size == 0 or size == N_IMAGES:
            return np.arange(N_IMAGES)
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        return torch.randperm(N_IMAGES, generator=gen)[:size].sort().values.numpy()

    @classmethod
    def load(cls, split: str, *, data_dir=None, valid_size: int = 0, test_size: int = 0,
             seed: int = 0, binarize: str = "none", download: bool = True, size: int = 0,
             first: int = 0, storage: str = "memory", budget: int | None = None):
        """One split (see the module docstring); called by :func:`autoencoders.data.get`.

        When the split streams (``storage``), or when the whole subset would not fit in
        ``budget`` as float32, the subset's images come from a memory-mapped uint8 cache
        (written once, block by block), never from one array in RAM.
        """

        cls.ensure_files(data_dir, download)  # a missing file is the first thing to say
        rows = cls.subset_rows(size)
        _, chosen = _rows(cls, {"train": (rows, None)}, split, valid_size, test_size, seed)
        chosen = chosen[:first] if first else chosen
        applied = "static" if binarize != "none" else "none"
        stream = over_budget(storage, len(chosen), cls.image_shape, budget)
        if stream or (storage != "memory"
                      and over_budget(storage, len(rows), cls.image_shape, budget)):
            path = cache_dir(cls.source.folder) / cls.cache_name(rows, data_dir, download)

            def fill(out: np.ndarray) -> None:
                cls.images_into(rows, out, data_dir, download)

            base = cached_uint8(path, (len(rows), IMAGE_SIZE, IMAGE_SIZE), fill, cls.name)
            if stream:
                report_streaming(cls.name, split, len(chosen), cls.image_shape, storage,
                                 budget, path)
                x = StreamedImages(base, chosen, grey=False, path=path)
                return ImageData(name=cls.name, split=split, x=x, y=None, binarize=applied)
            images = base  # a small split of a large subset: read its rows from the cache
        else:
            images = cls.images_at(rows, data_dir, download)  # (n, 64, 64) uint8 in {0, 1}
        x = torch.from_numpy(images[chosen]).to(torch.float32).unsqueeze(1)  # (N, 1, 64, 64)
        return ImageData(name=cls.name, split=split, x=x, y=None, binarize=applied)

    @classmethod
    def ground_truth(cls, data_dir=None, download: bool = True,
                     full_grid: bool = False) -> DSprites:
        """The factor API over this data set (``full_grid``: see the generated one)."""
        raise NotImplementedError

    @classmethod
    def ensure_files(cls, data_dir=None, download: bool = True) -> None:
        """Find (or download) the data set's files; raises DataMissingError."""


class DSpritesGenerated(_DSpritesBase):
    """Procedural dSprites drawn by :func:`render`; no files."""

    name: ClassVar[str] = "dsprites-generated"
    source: ClassVar[Source] = Source(dataset="dsprites-generated", folder="dsprites", files=())

    @classmethod
    def images_at(cls, rows: np.ndarray, data_dir=None, download: bool = True) -> np.ndarray:
        factors = DSprites().factors_of(torch.from_numpy(rows))
        return _cached_render(_key(rows), factors)

    @classmethod
    def images_into(cls, rows: np.ndarray, out: np.ndarray, data_dir=None,
                    download: bool = True, block: int = 16384) -> None:
        """Draw the images of ``rows`` into ``out`` block by block (bounded memory)."""
        gt = DSprites()
        for start in range(0, len(rows), block):
            factors = gt.factors_of(torch.from_numpy(rows[start:start + block]))
            out[start:start + block] = render(factors).numpy()

    @classmethod
    def cache_name(cls, rows: np.ndarray, data_dir=None, download: bool = True) -> str:
        """The uint8 cache of a subset: its rows and the rendering constants."""
        constants = repr((CENTRE_OFFSET, CENTRE_SPAN, SQUARE_HALF, ELLIPSE_AXES,
                          sorted(HEART.items()), BIAS))
        version = hashlib.md5(constants.encode()).hexdigest()[:8]
        return f"{cls.name}-{len(rows)}-{_key(rows)[1][:12]}-{version}.npy"

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict:
        raise ConfigError("dsprites-generated has no files; use data.get(...), which draws it.")

    @classmethod
    def ground_truth(cls, data_dir=None, download: bool = True,
                     full_grid: bool = False) -> DSprites:
        """The factor API over procedural dSprites.

        ``full_grid``: draw all 737,280 images once into a memory-mapped uint8 cache in the
        user cache folder (3.0 GB on disk, about 2 minutes the first time, reused by every
        later run) and look images up in it instead of drawing them. Worth it when a
        metric needs more images than the grid holds: the Higgins metric at its defaults
        draws 1.92 million, FactorVAE 0.97 million.
        """
        if not full_grid:
            return DSprites()
        rows = np.arange(N_IMAGES)
        path = cache_dir(cls.source.folder) / cls.cache_name(rows)
        images = cached_uint8(path, (N_IMAGES, IMAGE_SIZE, IMAGE_SIZE),
                              lambda out: cls.images_into(rows, out), cls.name)
        return DSprites(images)


class DSpritesOfficial(_DSpritesBase):
    """The official npz (about 26 MB compressed, 3 GB of uint8 images when loaded whole)."""

    name: ClassVar[str] = "dsprites"
    source: ClassVar[Source] = Source(
        dataset="dsprites",
        folder="dsprites",
        files=(FileSpec(
            NPZ_NAME,
            (f"https://github.com/deepmind/dsprites-dataset/raw/master/{NPZ_NAME}",),
            0,  # the official size is not published
            NPZ_MD5,
        ),),
    )

    @classmethod
    def _path(cls, data_dir, download: bool) -> Path:
        return ensure(cls.source, data_dir, download)[NPZ_NAME]

    @classmethod
    def ensure_files(cls, data_dir=None, download: bool = True) -> None:
        cls._path(data_dir, download)

    @classmethod
    def images_at(cls, rows: np.ndarray, data_dir=None, download: bool = True) -> np.ndarray:
        return read_npz_rows(cls._path(data_dir, download), rows)

    @classmethod
    def images_into(cls, rows: np.ndarray, out: np.ndarray, data_dir=None,
                    download: bool = True) -> None:
        """Stream the images of ``rows`` from the npz into ``out``."""
        read_npz_rows(cls._path(data_dir, download), rows, out=out)

    @classmethod
    def cache_name(cls, rows: np.ndarray, data_dir=None, download: bool = True) -> str:
        """The uint8 cache of a subset: its rows and the npz it came from."""
        stat = cls._path(data_dir, download).stat()
        source = hashlib.md5(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:8]
        return f"{cls.name}-{len(rows)}-{_key(rows)[1][:12]}-{source}.npy"

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict:
        imgs, _ = read_npz(paths[NPZ_NAME])
        return {"train": (imgs * np.uint8(255), None)}

    @classmethod
    def ground_truth(cls, data_dir=None, download: bool = True,
                     full_grid: bool = False) -> DSprites:
        """Images looked up in the official file (so ``full_grid`` changes nothing)."""
        path = cls._path(data_dir, download)
        return DSprites(read_npz_rows(path, np.arange(N_IMAGES)))


_RENDER_CACHE: dict = {}


def _key(rows: np.ndarray) -> tuple:
    return (len(rows), hashlib.md5(rows.tobytes()).hexdigest())


def _cached_render(key, factors: torch.Tensor) -> np.ndarray:
    """Rendered images for a subset, kept for the process (train/valid/test reuse them)."""
    if key not in _RENDER_CACHE:
        _RENDER_CACHE.clear()  # one subset at a time: images can be large
        images = render(factors).numpy()
        images.flags.writeable = False
        _RENDER_CACHE[key] = images
    return _RENDER_CACHE[key]


def fidelity(images: np.ndarray, factors: np.ndarray) -> dict:
    """How closely :func:`render` matches real images of known factors.

    Args:
        images: ``(N, 64, 64)`` real images in {0, 1}.
        factors: ``(N, 5)`` their official factor classes.

    Returns:
        ``iou`` ``(N,)`` (intersection over union of the on-pixels), ``exact`` ``(N,)``
        bool (every pixel equal), and ``mean_iou`` / ``exact_rate`` over all images.
    """
    drawn = render(torch.from_numpy(np.asarray(factors))).numpy().astype(bool)
    real = np.asarray(images).astype(bool)
    inter = (drawn & real).sum((1, 2))
    union = (drawn | real).sum((1, 2))
    iou = inter / np.maximum(union, 1)
    exact = (drawn == real).all((1, 2))
    return {"iou": iou, "exact": exact, "mean_iou": float(iou.mean()),
            "exact_rate": float(exact.mean())}


def read_shared_subset(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A real dSprites subset from the shared data folder with its official factor classes
    (from ``original_dataset_indices``, which both subsets carry): ``(N, 64, 64)``, ``(N, 5)``."""
    imgs, _ = read_npz(path)
    with np.load(path, allow_pickle=False) as z:
        index = z["original_dataset_indices"]
    return imgs, DSprites().factors_of(torch.from_numpy(index.astype(np.int64))).numpy()


_BLOCKS: dict[str, np.ndarray] = {}  # md5 of a factor block -> its images, bit-packed
_BLOCKS_MAX_BYTES = 256 * 2**20


def _render_cached(factors: torch.Tensor) -> torch.Tensor:
    """:func:`render` with a bounded in-process cache keyed by the factor values.

    The metrics draw their votes from fixed seeds, so every model and baseline of a run
    asks for the very same blocks of images; they are drawn once (stored bit-packed, at
    most 256 MB, oldest dropped first). Pure: the images depend only on the factors.
    """
    key = hashlib.md5(factors.numpy().tobytes()).hexdigest()
    if key in _BLOCKS:
        bits = _BLOCKS[key]
        flat = np.unpackbits(bits)[: len(factors) * IMAGE_SIZE * IMAGE_SIZE]
        return torch.from_numpy(flat.reshape(-1, IMAGE_SIZE, IMAGE_SIZE))
    images = render(factors)
    _BLOCKS[key] = np.packbits(images.numpy())
    while sum(b.nbytes for b in _BLOCKS.values()) > _BLOCKS_MAX_BYTES:
        _BLOCKS.pop(next(iter(_BLOCKS)))
    return images
