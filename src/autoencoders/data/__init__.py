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
from autoencoders.errors import ConfigError

__all__ = [
    "DATASETS",
    "ImageData",
    "STORAGES",
    "StreamedImages",
    "data_dirs",
    "fetch",
    "get",
    "read_frey",
    "read_idx",
    "status",
]

DATASETS: dict[str, type] = {"mnist": MNIST, "mnist-pooled": PooledMNIST,
                             "fashion-mnist": FashionMNIST, "frey": FreyFace,
                             **VARIATIONS}  # generated from MNIST (data/variations.py)
# datasets with their own ``load`` (drawn by code, or too large to parse whole): ``get``
# hands them the arguments, including ``size`` (images drawn before splitting; 0: all)
DATASETS.update({"dsprites": DSpritesOfficial, "dsprites-generated": DSpritesGenerated,
                 "celeba": CelebA})
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
            to draw, with the dataset's fixed seed, before splitting (0: all).
        first: Keep only the first ``first`` images of the split (0: all), before the
            storage is chosen.
        storage: ``"memory"`` (one float32 tensor), ``"memmap"`` (stream from a
            memory-mapped uint8 cache) or ``"auto"`` (stream when the split's float32
            bytes exceed ``budget``; also read a large data set's images from its cache
            when only a small split is wanted). See :mod:`autoencoders.data.storage`.
        budget: Bytes for ``"auto"``; ``None``: half the available RAM.

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
