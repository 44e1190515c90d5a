"""Datasets as ``(N, C, H, W)`` float32 tensors in [0, 1], with deterministic splits.

Usage::

    train = get("mnist", "train", valid_size=10000, binarize="dynamic")
    valid = get("mnist", "valid", valid_size=10000, binarize="dynamic")

Each dataset class in :data:`DATASETS` declares ``name``, ``image_shape`` (C, H, W),
``num_classes`` (``None`` without labels), ``official_splits``, ``source`` (files, URLs,
MD5s; see :mod:`autoencoders.data.download`) and ``read(paths)``, which parses the files
into ``{official split: (images (N, H, W) uint8, labels (N,) uint8 or None)}``.

Splits:
    * ``test``: the official test split when there is one (MNIST, Fashion-MNIST; then
      ``test_size`` must be 0); otherwise (Frey) ``test_size`` images of the official
      train split, chosen by a permutation with the fixed seed :data:`TEST_SPLIT_SEED`,
      so the test set never depends on ``seed`` or ``valid_size``.
    * ``valid``: ``valid_size`` images of what remains of the official train split,
      chosen by ``torch.randperm`` with ``torch.Generator().manual_seed(seed)``.
    * ``train``: the rest. Rows of every split keep the files' order.

Binarisation (``binarize``):
    * ``"none"``: grey levels.
    * ``"static"``: every official split is binarised once, ``x ~ Bernoulli(grey)``, with
      the seed ``STATIC_BINARIZE_SEED + offset`` (train 0, test 1), independent of
      ``seed``; carving happens afterwards, so an image always gets the same pixels.
    * ``"dynamic"``: train stays grey (the trainer resamples it, and ``ImageData.binarize``
      says ``"dynamic"``); valid and test are statically binarised as above (their
      ``ImageData.binarize`` says ``"static"``) so that evaluation is deterministic.

Storage (``storage``; see :mod:`autoencoders.data.storage`): a split is one float32
tensor in RAM (``"memory"``), or, when it would not fit (``"auto"``) or when asked
(``"memmap"``), a :class:`~autoencoders.data.storage.StreamedImages` that reads batches of
rows from a memory-mapped uint8 cache in the user cache folder and converts them to float32
on the fly, bit-identical to the in-memory tensor.

Parsed files and static binarisations are cached in memory (keyed by path, size and
mtime); on disk only the uint8 caches of streamed splits (and CelebA's decoded images).

Your own data (:mod:`autoencoders.data.own`): ``folder`` (PNG/JPEG files, labels from
class subfolders) and ``array`` (a ``.npy``/``.npz`` file) read ``path``; :func:`register`
adds a data set from a loader function. Their test split is the official one when given
(``test/`` subfolder, ``x_test``), else ``test_fraction`` of the images carved with
:data:`TEST_SPLIT_SEED`; then ``valid_fraction`` of the rest is carved with ``seed``.
Binarisation, storage and caching are those of the built-in sets.
"""

from __future__ import annotations

import difflib
import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from autoencoders.data.celeba import CelebA
from autoencoders.data.download import data_dirs, ensure, find
from autoencoders.data.dsprites import DSpritesGenerated, DSpritesOfficial
from autoencoders.data.frey import FreyFace, read_frey
from autoencoders.data.mnist import MNIST, FashionMNIST, PooledMNIST, read_idx
from autoencoders.data.own import ArrayData, FolderData, registered
from autoencoders.data.splits import TEST_SPLIT_SEED, ImageData, _rows  # noqa: F401
from autoencoders.data.storage import (
    STORAGES,
    StreamedImages,
    cache_dir,
    cached_uint8,
    check_storage,
    over_budget,
    report_streaming,
)
from autoencoders.data.variations import VARIATIONS
from autoencoders.errors import ConfigError, DataMissingError
from autoencoders.logs import logger

__all__ = [
    "DATASETS",
    "ImageData",
    "STORAGES",
    "StreamedImages",
    "data_dirs",
    "describe",
    "draw_binary",
    "fetch",
    "get",
    "image_shape",
    "read_frey",
    "read_idx",
    "register",
    "summary",
    "status",
]

DATASETS: dict[str, type] = {"mnist": MNIST, "mnist-pooled": PooledMNIST,
                             "fashion-mnist": FashionMNIST, "frey": FreyFace,
                             **VARIATIONS}  # generated from MNIST (data/variations.py)
# datasets with their own ``load`` (drawn by code, or too large to parse whole): ``get``
# hands them the arguments, including ``size`` (images drawn before splitting; 0: all)
DATASETS.update({"dsprites": DSpritesOfficial, "dsprites-generated": DSpritesGenerated,
                 "celeba": CelebA})
# your own images (data/own.py): data.path names the folder or the .npy/.npz file
DATASETS.update({"folder": FolderData, "array": ArrayData})
BUILTIN = tuple(DATASETS)
SPLITS = ("train", "valid", "test")
BINARIZE = ("none", "static", "dynamic")
STATIC_BINARIZE_SEED = 12345
_SEED_OFFSET = {"train": 0, "test": 1}  # official split -> offset of its binarisation seed

_CacheKey = tuple[tuple[str, int, int], ...]


def get(
    name: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    valid_size: int = 10000,
    test_size: int = 0,
    seed: int = 0,
    binarize: str = "none",
    download: bool = True,
    size: int = 0,
    first: int = 0,
    storage: str = "memory",
    budget: int | None = None,
    path: str = "",
    image_size: int = 0,
    channels: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> ImageData:
    """Load one split of a dataset (see the module docstring for splits and binarisation).

    Args:
        name: A key of :data:`DATASETS`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data_dir: Folder searched first, and where downloads go (see :func:`data_dirs`).
        valid_size: Images moved from the official train split to ``valid``; may be 0.
        test_size: Images moved from the official train split to ``test``; must be 0
            when the dataset has an official test split.
        seed: Seed of the train/valid permutation.
        binarize: ``"none"``, ``"static"`` or ``"dynamic"``.
        download: Whether absent files may be downloaded.
        size: For datasets with their own ``load`` (dSprites, CelebA): how many images
            to draw, with the dataset's fixed seed, before splitting (0: all); your own
            data: its first ``size`` images.
        first: Keep only the first ``first`` images of the split (0: all), before the
            storage is chosen.
        storage: ``"memory"`` (one float32 tensor), ``"memmap"`` (stream from a
            memory-mapped uint8 cache) or ``"auto"`` (stream when the split's float32
            bytes exceed ``budget``; also read a large data set's images from its cache
            when only a small split is wanted). See :mod:`autoencoders.data.storage`.
        budget: Bytes for ``"auto"``; ``None``: half the available RAM.
        path: Your own data (``folder``, ``array``, registered sets): the folder or
            file read (see :mod:`autoencoders.data.own`).
        image_size: ``folder``: resize and centre-crop every image to this square size
            (0: keep the images' size).
        channels: 1 (grey), 3 (RGB) or 0 (as the data holds it).
        valid_fraction, test_fraction: Your own data: the share of images carved into
            valid, and into test when the data has no test split of its own
            (``valid_size`` and ``test_size`` count images of the built-in sets).

    Returns:
        The split, ``x`` of shape ``(N, C, H, W)`` (a tensor, or a ``StreamedImages``).

    Raises:
        ConfigError: An argument is invalid (the message lists the valid choices).
        DataMissingError: A file is absent and could not be downloaded.
        DataCorruptError: A file does not match its checksum or cannot be parsed.
    """
    cls = _dataset(name)
    _check_choice("split", split, SPLITS)
    _check_choice("binarize", binarize, BINARIZE)
    check_storage(storage)
    for arg, value in (("valid_size", valid_size), ("test_size", test_size), ("seed", seed),
                       ("first", first)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{arg} must be a non-negative integer, got {value!r}.")
    if getattr(cls, "user", False):
        return _get_own(cls, split, path=path, image_size=image_size, channels=channels,
                        valid_fraction=valid_fraction, test_fraction=test_fraction,
                        seed=seed, binarize=binarize, first=first, storage=storage,
                        budget=budget, size=size)
    if hasattr(cls, "load"):
        return cls.load(split, data_dir=data_dir, valid_size=valid_size, test_size=test_size,
                        seed=seed, binarize=binarize, download=download, size=size,
                        first=first, storage=storage, budget=budget)
    if size:
        custom = ", ".join(k for k, c in DATASETS.items() if hasattr(c, "load"))
        raise ConfigError(f"size={size} applies only to {custom}; {name} has a fixed size. "
                          "Set data.size = 0 (or use data.train_size to train on fewer).")
    key = _cache_key(ensure(cls.source, data_dir, download, _other_md5s(cls)))
    official = _official(cls, key)
    source_split, rows = _rows(cls, official, split, valid_size, test_size, seed)
    rows = rows[:first] if first else rows

    images, labels = official[source_split]
    applied = "static" if binarize == "dynamic" and split != "train" else binarize
    y = None if labels is None else torch.from_numpy(labels[rows].astype(np.int64))
    image_shape = (1, *images.shape[1:])
    if over_budget(storage, len(rows), image_shape, budget):
        kind = "binary" if applied == "static" else "grey"
        digest = hashlib.md5(repr(key).encode()).hexdigest()[:16]
        path = cache_dir(cls.source.folder) / f"{cls.name}-{source_split}-{kind}-{digest}.npy"

        def fill(out: np.ndarray) -> None:
            if applied == "static":
                out[...] = _binarised(cls, key, source_split).numpy()
            else:
                out[...] = images

        base = cached_uint8(path, images.shape, fill, name)
        report_streaming(name, split, len(rows), image_shape, storage, budget, path)
        x = StreamedImages(base, rows, grey=applied != "static", path=path)
        return ImageData(name=name, split=split, x=x, y=y, binarize=applied)
    if applied == "static":
        x = _binarised(cls, key, source_split)[rows].to(torch.float32)
    else:
        x = torch.from_numpy(images[rows]).to(torch.float32).div_(255.0)
    x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    return ImageData(name=name, split=split, x=x, y=y, binarize=applied)


def image_shape(config) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images of ``config`` (a :class:`~autoencoders.config.DataConfig`):
    the data set's declared shape, or, for your own data, read from the data itself."""
    cls = _dataset(config.name)
    if not getattr(cls, "user", False):
        return cls.image_shape
    x = cls.splits(config.path, config.image_size, config.channels)["train"][0]
    return (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])


def register(name: str, loader, *, replace: bool = False) -> None:
    """Add a data set made by ``loader``; then ``data.name = name`` trains on it.

    Args:
        name: The data set's name (``data.name``); not one of the built-in names.
        loader: ``loader(path)`` returns images, or ``(images, labels)``: a numpy array or
            torch tensor ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` (C = 1 or 3),
            uint8 or float in [0, 1]; labels ``(N,)`` integers. ``path`` is
            ``data.path`` ("" when unset). Called whenever a split is loaded, so it
            should return the same images every time.
        replace: Allow replacing a data set registered earlier under ``name``.

    Raises:
        ConfigError: ``name`` is a built-in data set, already registered, or empty; or
            ``loader`` is not callable.

    Example:
        >>> import numpy as np, autoencoders as ae
        >>> ae.datasets.register("noise", lambda path: np.random.rand(100, 8, 8))
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"A data set name must be a non-empty string, got {name!r}.")
    if name in BUILTIN:
        raise ConfigError(f"{name!r} is a built-in data set; register yours under another "
                          f"name (taken: {', '.join(BUILTIN)}).")
    if name in DATASETS and not replace:
        raise ConfigError(f"A data set {name!r} is already registered; pass replace=True "
                          "to replace it, or choose another name.")
    if not callable(loader):
        raise ConfigError(f"register({name!r}, loader): loader must be a function "
                          f"loader(path) returning images, got {type(loader).__name__}.")
    DATASETS[name] = registered(name, loader)


def _get_own(cls: type, split: str, *, path: str, image_size: int, channels: int,
             valid_fraction: float, test_fraction: float, seed: int, binarize: str,
             first: int, storage: str, budget: int | None, size: int = 0) -> ImageData:
    """One split of a user data set: carved, binarised and stored like the built-in sets;
    ``size`` > 0 keeps the first ``size`` images (in file order) before carving, as for
    CelebA."""
    for arg, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{arg} must be in [0, 1), got {value!r}.")
    official = cls.splits(path, image_size, channels)
    logger.debug(f"{cls.name}: {', '.join(f'{k} {v[0].shape}' for k, v in official.items())}"
                 f" {official['train'][0].dtype} from {path or 'its loader'}")
    if size:
        official = {**official, "train": tuple(None if a is None else a[:size]
                                               for a in official["train"])}
    n = len(official["train"][0])
    test_size = 0 if "test" in official else int(round(test_fraction * n))
    valid_size = int(round(valid_fraction * (n - test_size)))
    if n - test_size - valid_size < 1:
        raise ConfigError(
            f"{cls.name} ({path or 'loader'}) has {n} images: after carving {test_size} for "
            f"test and {valid_size} for valid none is left to train on. Add images, or "
            "lower data.valid_fraction / data.test_fraction.")
    source_split, rows = _rows(cls, official, split, valid_size, test_size, seed)
    rows = rows[:first] if first else rows
    images, labels = official[source_split]
    y = None if labels is None else torch.from_numpy(labels[rows])
    applied = "static" if binarize == "dynamic" and split != "train" else binarize
    image_shape = (1, *images.shape[1:]) if images.ndim == 3 else \
        (images.shape[3], *images.shape[1:3])
    floats = images.dtype != np.uint8
    if floats and storage == "memmap":
        raise ConfigError(
            f"data.storage = \"memmap\" streams uint8 images, but {cls.name} holds float "
            "images. Save them as uint8 (numpy.round(x * 255).astype(numpy.uint8)) or set "
            "data.storage = \"memory\".")
    if not floats and over_budget(storage, len(rows), image_shape, budget):
        kind = "binary" if applied == "static" else "grey"
        digest = cls.digest(path, image_size, channels)
        cache = cache_dir("own") / f"{cls.name}-{source_split}-{kind}-{digest}-{len(images)}.npy"

        def fill(out: np.ndarray) -> None:
            if applied == "static":
                out[...] = _own_binarised(images, source_split).to(torch.uint8).numpy()
            else:
                out[...] = images

        base = cached_uint8(cache, images.shape, fill, cls.name)
        report_streaming(cls.name, split, len(rows), image_shape, storage, budget, cache)
        x = StreamedImages(base, rows, grey=applied != "static", path=cache)
        return ImageData(name=cls.name, split=split, x=x, y=y, binarize=applied)
    if applied == "static":  # fixed seed per official split, as for the built-in sets
        grey = _own_binarised(images, source_split)[torch.from_numpy(rows)]
    else:
        grey = torch.from_numpy(np.ascontiguousarray(images[rows]))
        grey = grey.to(torch.float32).div_(255.0) if not floats else grey
    x = grey.unsqueeze(1) if grey.ndim == 3 else grey.permute(0, 3, 1, 2)  # -> (N, C, H, W)
    return ImageData(name=cls.name, split=split, x=x.contiguous(), y=y, binarize=applied)


def draw_binary(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Binary images drawn pixel by pixel with probabilities ``p`` (``binarize =
    "dynamic"``: a new draw of every training batch): ``u < p``, ``u ~ U[0, 1)`` from
    ``generator``. PyTorch's CPU ``torch.bernoulli`` makes the same comparison with the same
    uniform draws, so the images and the generator's next state are identical to it (a test
    checks this); it compares one element at a time, which took 15 % of an MNIST VAE
    step, while a vectorised uniform fill and one comparison are about 5x faster."""
    u = torch.empty_like(p).uniform_(generator=generator)
    return (u < p).to(p.dtype)


def _own_binarised(images: np.ndarray, source_split: str) -> torch.Tensor:
    """Every image of an official split of your own data, binarised once with the split's
    fixed seed: float32 in {0, 1}, same layout as ``images``."""
    grey = torch.from_numpy(np.array(images))
    if grey.dtype == torch.uint8:
        grey = grey.to(torch.float32).div_(255.0)
    generator = torch.Generator().manual_seed(STATIC_BINARIZE_SEED + _SEED_OFFSET[source_split])
    return torch.bernoulli(grey, generator=generator)


def status(data_dir: str | Path | None = None) -> list[dict]:
    """Where each file of each dataset is, without reading it (``fetch`` verifies).

    Args:
        data_dir: Folder searched first (see :func:`data_dirs`).

    Returns:
        One row per (dataset, file): ``dataset``, ``file``, ``size_bytes`` (official size),
        ``present`` (a file of that name exists in a searched folder), ``path`` (the first
        one found, or ``None``). Datasets generated from another's files (the MNIST
        variations) add no rows of their own.
    """
    rows = []
    seen = []
    for dataset, cls in DATASETS.items():
        if any(cls.source is s for s in seen):
            continue
        seen.append(cls.source)
        for spec in cls.source.files:
            path = find(cls.source, spec, data_dir)
            rows.append(
                {
                    "dataset": dataset,
                    "file": spec.name,
                    "size_bytes": spec.size,
                    "present": path is not None,
                    "path": path,
                }
            )
    return rows


SUMMARIES = {  # one line per data set for `autoencoders list`
    "mnist": "MNIST handwritten digits: 60,000 train + 10,000 test, 28x28 grey, 10 classes "
             "(downloaded).",
    "fashion-mnist": "Fashion-MNIST (Zalando articles): 60,000 train + 10,000 test, 28x28 "
                     "grey, 10 classes (downloaded).",
    "mnist-pooled": "MNIST's 70,000 images as one pool, split as in the stick-breaking VAE "
                    "authors' code (from MNIST's files).",
    "frey": "Frey Face: 1,965 video frames of one face, 28x20 grey, no labels (downloaded).",
    "mnist-basic": "MNIST digits with the variations benchmark's split sizes (12,000 + "
                   "50,000), generated from MNIST's files.",
    "mnist-rot": "Rotated MNIST digits, generated from MNIST's files.",
    "mnist-bg-rand": "MNIST digits on uniform-noise backgrounds, generated from MNIST's files.",
    "mnist-bg-img": "MNIST digits on random-texture backgrounds, generated from MNIST's files.",
    "mnist-rot-bg-img": "Rotated MNIST digits on random-texture backgrounds, generated from "
                        "MNIST's files.",
    "dsprites": "dSprites: 737,280 binary 64x64 shapes over 5 ground-truth factors (the "
                "official npz, about 26 MB, downloaded).",
    "dsprites-generated": "dSprites drawn by code to match the official images: no "
                          "download.",
    "celeba": "CelebA aligned faces: 202,599 photos cropped to 64x64 RGB (placed by hand: "
              "`autoencoders data fetch celeba` says how).",
}


def summary(name: str) -> str:
    """One line describing the data set ``name`` (its docstring's first line for a data
    set registered with :func:`register`)."""
    if name in SUMMARIES:
        return SUMMARIES[name]
    return " ".join((_dataset(name).__doc__ or "").strip().split("\n\n")[0].split())


CELEBA_ZIP_BYTES = 1_443_490_838  # img_align_celeba.zip as distributed (202,599 JPEGs)


def describe(data_dir: str | Path | None = None) -> list[dict]:
    """Every data set of :data:`DATASETS` for ``autoencoders data list``: one row per file
    (as :func:`status`), and one row for each data set without files of its own.

    Returns:
        Rows with ``dataset``, ``file`` (``"-"`` when none), ``size_bytes`` (``None`` when
        unknown) and ``where`` (the path found, ``"missing"``, or what the data set is
        made from).
    """
    files = {}
    for row in status(data_dir):
        files.setdefault(row["dataset"], []).append(row)
    owner = {}
    for name, cls in DATASETS.items():
        if cls.source.files and id(cls.source) not in owner:
            owner[id(cls.source)] = name
    rows = []
    for name, cls in DATASETS.items():
        if name in files:
            rows += [{"dataset": name, "file": r["file"], "size_bytes": r["size_bytes"],
                      "where": str(r["path"]) if r["present"] else "missing"}
                     for r in files[name]]
            continue
        if cls.source.files:  # shares another data set's files (the MNIST variations)
            base = owner[id(cls.source)]
            present = all(r["present"] for r in files.get(base, []))
            where = f"generated from {base}'s files ({'present' if present else 'missing'})"
        elif name == "celeba":
            try:
                where = str(CelebA.fetch(data_dir)[0].parent)
            except DataMissingError:
                where = "missing: placed by hand (`autoencoders data fetch celeba` says how)"
            rows.append({"dataset": name, "file": "img_align_celeba/ + list_attr_celeba.txt",
                         "size_bytes": CELEBA_ZIP_BYTES, "where": where})
            continue
        elif name == "folder":
            where = "your PNG/JPEG images: --set data.name=folder --set data.path=DIR"
        elif name == "array":
            where = "your .npy/.npz images: --set data.name=array --set data.path=FILE"
        elif getattr(cls, "user", False):
            where = "registered with ae.datasets.register"
        else:
            where = "drawn by code: no file"
        rows.append({"dataset": name, "file": "-", "size_bytes": None, "where": where})
    return rows


def fetch(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Download the absent files of a dataset and verify all of them.

    Args:
        name: A key of :data:`DATASETS`.
        data_dir: Folder searched first, and where downloads go.

    Returns:
        The verified paths, one per file of the dataset.

    Raises:
        ConfigError: Unknown dataset name.
        DataMissingError: A file is absent and the download failed.
        DataCorruptError: A file (present or downloaded) does not match its checksum.
    """
    cls = _dataset(name)
    if getattr(cls, "user", False):
        raise ConfigError(f"{name} is your own data (read from data.path): there is nothing "
                          "to download. `autoencoders data fetch` applies to: "
                          f"{', '.join(n for n in BUILTIN if n not in ('folder', 'array'))}.")
    if hasattr(cls, "fetch"):  # not a plain download (CelebA: placed by hand)
        return cls.fetch(data_dir)
    return list(ensure(cls.source, data_dir, True, _other_md5s(cls)).values())


def _dataset(name: str) -> type:
    """The registry class for ``name``, or a ConfigError naming the valid names."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(str(name).lower(), DATASETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown dataset {name!r}.{hint} Valid names: {', '.join(DATASETS)}.")


def _check_choice(arg: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{arg} must be one of {', '.join(choices)}; got {value!r}.")


def _other_md5s(cls: type) -> frozenset[str]:
    """MD5s of every other dataset's files, so a same-named file of theirs is not 'corrupt'."""
    own = {spec.name for spec in cls.source.files}
    md5s = set()
    for other in DATASETS.values():
        if other is not cls:
            for spec in other.source.files:
                if spec.name in own:
                    md5s |= {spec.md5, spec.raw_md5} - {None}
    return frozenset(md5s)


def _cache_key(paths: dict[str, Path]) -> _CacheKey:
    """(path, size, mtime) per file: changes whenever a file is replaced."""
    key = []
    for path in paths.values():
        stat = path.stat()
        key.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(key)


@lru_cache(maxsize=4)
def _official(cls: type, key: _CacheKey) -> dict:
    """Parsed official splits of ``cls`` from the files in ``key`` (see ``cls.read``)."""
    names = [spec.name for spec in cls.source.files]
    return cls.read({name: Path(entry[0]) for name, entry in zip(names, key, strict=True)})


@lru_cache(maxsize=4)
def _binarised(cls: type, key: _CacheKey, split: str) -> torch.Tensor:
    """Official ``split`` binarised with its fixed seed: ``(N, H, W)`` bool."""
    grey = torch.from_numpy(_official(cls, key)[split][0].astype(np.float32)).div_(255.0)
    generator = torch.Generator().manual_seed(STATIC_BINARIZE_SEED + _SEED_OFFSET[split])
    return torch.bernoulli(grey, generator=generator).bool()
