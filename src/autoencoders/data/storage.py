"""Where a split's images live: one float32 tensor in RAM, or a memory-mapped uint8 cache.

Small data sets (MNIST, Frey, the MNIST variations) are one ``(N, C, H, W)`` float32
tensor, and a batch is an index slice of it. A split whose float32 size exceeds the memory
budget (full CelebA: 202,599 x 3 x 64 x 64 is 9.96 GB; full dSprites: 737,280 x 64 x 64
is 12.1 GB) is instead a :class:`StreamedImages`: the data set's uint8 images are written
once to a ``.npy`` file in the user cache (``pooch.os_cache("autoencoders")/<folder>``,
atomically: temp file, fsync, rename), opened with ``numpy`` memory mapping, and every
batch of rows is read and converted to float32 on the fly, with the same operations as the
in-memory path, so both give bit-identical batches.

``storage`` (``data.storage`` in the config) chooses:

* ``"memory"``: always one float32 tensor.
* ``"memmap"``: always stream from the cache.
* ``"auto"``: stream when the split's float32 bytes exceed :func:`default_budget` (half of
  the available RAM, from ``psutil`` when installed, else ``/proc/meminfo``).

A cache file is checked before use (npy header, shape, dtype and exact file size); a
truncated or damaged one is reported by name and rebuilt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from autoencoders.errors import ConfigError, UserError
from autoencoders.logs import logger

STORAGES = ("auto", "memory", "memmap")
BUDGET_FRACTION = 0.5  # of the available RAM: room for the model, valid split, evaluation
FALLBACK_BUDGET = 8 * 2**30  # when the available RAM cannot be read


def available_memory() -> int | None:
    """Bytes of RAM available to new allocations, or ``None`` when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB -> bytes
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_budget() -> int:
    """Float32 bytes a split may take in RAM: :data:`BUDGET_FRACTION` of the available RAM
    (:data:`FALLBACK_BUDGET` when it cannot be read)."""
    available = available_memory()
    return int(available * BUDGET_FRACTION) if available else FALLBACK_BUDGET


def float_bytes(n: int, image_shape: tuple[int, ...]) -> int:
    """Bytes of ``n`` images of ``image_shape`` as float32."""
    return 4 * n * int(np.prod(image_shape))


def check_storage(storage: str) -> None:
    if storage not in STORAGES:
        raise ConfigError(f"storage must be one of {', '.join(STORAGES)}; got {storage!r}.")


def over_budget(storage: str, n: int, image_shape: tuple[int, ...],
                budget: int | None) -> bool:
    """Whether ``n`` images are streamed under ``storage`` ("memmap": always; "memory":
    never; "auto": when their float32 size exceeds ``budget``, default
    :func:`default_budget`)."""
    check_storage(storage)
    if storage != "auto":
        return storage == "memmap"
    return float_bytes(n, image_shape) > (default_budget() if budget is None else budget)


def report_streaming(name: str, split: str, n: int, image_shape: tuple[int, ...],
                     storage: str, budget: int | None, path: Path) -> None:
    """One line on stderr saying why a split streams, and from which file."""
    size = f"{n:,} {split} images ({_size(float_bytes(n, image_shape))} as float32)"
    if storage == "memmap":
        why = 'data.storage = "memmap"'
    else:
        why = f"> budget {_size(default_budget() if budget is None else budget)}"
    _log(f"{name}: {size} {why}: streaming from memory-mapped uint8 cache {path}")


def cache_dir(folder: str) -> Path:
    """``pooch.os_cache("autoencoders")/<folder>``: the user cache, never the data folder
    (which may be shared and read-only)."""
    import pooch

    return Path(pooch.os_cache("autoencoders")) / folder


def cached_uint8(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None],
                 name: str) -> np.ndarray:
    """The uint8 array ``shape`` stored at ``path``, memory-mapped read-only; built with
    ``fill(out)`` when absent or damaged.

    Args:
        path: the ``.npy`` cache file.
        shape: its expected shape (uint8).
        fill: writes every element of the writable memory-mapped ``out`` (in blocks, so
            the data set never has to fit in RAM).
        name: the data set, for messages.

    Raises:
        UserError: the cache could not be written (says where, how much, and the fix).
    """
    problem = _damage(path, shape)
    if problem is None:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if problem != "absent":
        _log(f"{name}: the cache {path} is damaged ({problem}): rebuilding it.")
        _remove(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fill(out)
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(path)  # atomic: readers never see half a cache
    except OSError as err:
        _remove(tmp)
        raise UserError(
            f"{name}: could not write the uint8 cache {path} ({err}); it needs "
            f"{_size(np.prod(shape))} there. Free space in that folder (or point "
            f"$XDG_CACHE_HOME elsewhere), or set data.storage = \"memory\" if the images "
            f"fit in RAM as float32 ({_size(4 * np.prod(shape))}).") from None
    except BaseException:
        _remove(tmp)
        raise
    problem = _damage(path, shape)
    if problem is not None:  # pragma: no cover - the file system lost our write
        raise UserError(f"{name}: the cache {path} was just written but reads back as "
                        f"{problem}. Check the disk, then delete the file and retry.")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _damage(path: Path, shape: tuple[int, ...]) -> str | None:
    """``None`` when ``path`` is a complete uint8 ``.npy`` of ``shape``; else what is
    wrong (``"absent"`` when there is no file)."""
    if not path.is_file():
        return "absent"
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            got_shape, fortran, dtype = read_header(f)
            offset = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError, SyntaxError) as err:
        return f"unreadable npy header: {err}"
    if dtype != np.uint8 or fortran or tuple(got_shape) != tuple(shape):
        return f"holds {dtype} {tuple(got_shape)}, expected uint8 {tuple(shape)}"
    expected = offset + int(np.prod(shape))
    if size != expected:
        return f"{size:,} bytes, expected {expected:,}: truncated or overwritten"
    return None


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def _log(message: str) -> None:
    logger.info(message)


class StreamedImages:
    """Rows of a memory-mapped uint8 array, read as float32 images batch by batch.

    Behaves like the ``(N, C, H, W)`` float32 tensor it stands for wherever a split is
    read in batches: ``shape``, ``len``, ``to(device)``, and indexing (an int, a slice, or
    an integer array / tensor of rows) returns a float32 tensor on ``device``. The rows of
    a batch are read from the file in sorted order (for locality) and returned in the
    order asked for; no per-sample Python.

    Args:
        base: ``(M, H, W)`` or ``(M, H, W, C)`` uint8 (a read-only ``np.memmap``).
        rows: ``(N,)`` int64 rows of ``base`` that make up the split, in split order.
        grey: images are grey levels 0..255 (divided by 255); else they are {0, 1}.
        device: where batches are put.
        path: the cache file, for ``repr``.
    """

    dtype = torch.float32

    def __init__(self, base: np.ndarray, rows: np.ndarray, *, grey: bool,
                 device: str | torch.device = "cpu", path: Path | None = None):
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)
        self.grey = grey
        self.device = torch.device(device)
        self.path = path
        self._channels_last = base.ndim == 4
        hw_c = base.shape[1:]
        image = (hw_c[2], hw_c[0], hw_c[1]) if self._channels_last else (1, *hw_c)
        self.shape = torch.Size((len(self.rows), *image))

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (f"StreamedImages(shape={tuple(self.shape)}, device={self.device}, "
                f"cache={self.path})")

    def to(self, device: str | torch.device) -> StreamedImages:
        """The same rows, with batches put on ``device``."""
        return StreamedImages(self.base, self.rows, grey=self.grey, device=device,
                              path=self.path)

    def head(self, n: int) -> StreamedImages:
        """The first ``n`` images of the split, still streamed."""
        return StreamedImages(self.base, self.rows[:n], grey=self.grey, device=self.device,
                              path=self.path)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        rows = self.rows[index]
        single = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        if len(rows) > 1 and bool((np.diff(rows) < 0).any()):
            order = np.argsort(rows, kind="stable")
            u8 = np.empty((len(rows), *self.base.shape[1:]), np.uint8)
            u8[order] = self.base[rows[order]]  # read in file order, put back in batch order
        else:
            u8 = np.asarray(self.base[rows])
        x = torch.from_numpy(u8)
        # (B, H, W, C) -> (B, C, H, W) as a view, like the in-memory tensor;
        # (B, H, W) -> (B, 1, H, W)
        x = x.permute(0, 3, 1, 2) if self._channels_last else x.unsqueeze(1)
        x = x.to(torch.float32)
        if self.grey:
            x = x.div_(255.0)
        x = x.to(self.device)
        return x[0] if single else x
