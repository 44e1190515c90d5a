"""MNIST and Fashion-MNIST: the IDX file format and the two datasets stored in it.

IDX (http://yann.lecun.com/exdb/mnist/, bottom of the page): a 4-byte magic number
``0x00 0x00 <type> <ndim>`` (2049 = unsigned bytes, 1 dim, labels; 2051 = unsigned
bytes, 3 dims, images), then ``ndim`` big-endian uint32 sizes, then the data in
row-major order, big-endian. The files are distributed gzip-compressed.

Both datasets: train 60000 and test 10000 grey images of 28 x 28 pixels, labels 0-9.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from autoencoders.data.download import FileSpec, Source
from autoencoders.errors import DataCorruptError

# IDX type byte -> element dtype (big-endian for multi-byte types).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw.

    Args:
        path: A ``.gz`` or uncompressed IDX file (gzip is detected from the content).

    Returns:
        Read-only array of the shape given in the header, e.g. ``(60000, 28, 28)`` uint8
        for MNIST train images (magic 2051) or ``(60000,)`` uint8 for labels (magic 2049).

    Raises:
        DataCorruptError: The gzip stream is truncated or invalid, or the magic number,
            dimensions or byte length are inconsistent.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, path)
    return parse_idx(data, source=str(path))


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes (see :func:`read_idx`); ``source`` names them in errors."""
    if len(data) < 4:
        raise DataCorruptError(f"IDX file {source} is {len(data)} bytes, shorter than a header.")
    zeros, type_code, ndim = data[:2], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if zeros != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        raise DataCorruptError(
            f"IDX file {source} has an invalid magic number {magic} (0x{magic:08x}); "
            f"expected 2049 for labels or 2051 for images."
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataCorruptError(f"IDX file {source} is truncated inside its header.")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataCorruptError(
            f"IDX file {source} has {len(data)} bytes but its header (magic {magic}, shape "
            f"{shape}) implies {expected}: the file is truncated or not an IDX file."
        )
    return np.frombuffer(data, dtype, offset=header_len).reshape(shape)


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataCorruptError(
            f"{path} is not a valid gzip file ({type(err).__name__}: {err}); it is probably "
            f"truncated. Delete it and download it again."
        ) from err


def _check_pair(images: np.ndarray, labels: np.ndarray, files: tuple[Path, Path]) -> None:
    """Raise DataCorruptError unless images (N, 28, 28) uint8 and labels (N,) in 0..9 agree."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataCorruptError(
            f"{files[0]} holds {images.dtype} images of shape {images.shape}, "
            f"expected uint8 (N, 28, 28)."
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataCorruptError(
            f"{files[1]} holds {labels.dtype} labels of shape {labels.shape}, expected uint8 "
            f"({images.shape[0]},) to match {files[0]}."
        )
    if labels.size and labels.max() > 9:
        raise DataCorruptError(f"{files[1]} has label {labels.max()}, expected 0-9.")


def _specs(base_urls: tuple[str, ...], rows: list[tuple[str, int, str, str]]) -> tuple:
    return tuple(
        FileSpec(name, tuple(base + name for base in base_urls), size, md5, raw_md5)
        for name, size, md5, raw_md5 in rows
    )


class MNIST:
    """MNIST handwritten digits (LeCun et al., 1998), official IDX files.

    Splits: train 60000, test 10000; images (N, 28, 28) uint8, labels (N,) uint8 0-9.
    """

    name: ClassVar[str] = "mnist"
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    num_classes: ClassVar[int | None] = 10
    official_splits: ClassVar[tuple[str, ...]] = ("train", "test")
    # (file, size in bytes, md5 of the .gz, md5 of its decompressed content)
    source: ClassVar[Source] = Source(
        dataset="mnist",
        folder="mnist",
        files=_specs(
            ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
            [
                (
                    "train-images-idx3-ubyte.gz",
                    9912422,
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "6bbc9ace898e44ae57da46a324031adb",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    28881,
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "a25bea736e30d166cdddb491f175f624",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    1648877,
                    "9fb629c4189551a2d022fa330f9573f3",
                    "2646ac647ad5339dbf082846283269ea",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    4542,
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "27ae3e4e09519cfbb04c329615203637",
                ),
            ],
        ),
    )

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Parse the official splits.

        Args:
            paths: File name -> path, for every file of :attr:`source`.

        Returns:
            ``{"train": (images, labels), "test": (images, labels)}``; images
            ``(N, 28, 28)`` uint8, labels ``(N,)`` uint8, both read-only.

        Raises:
            DataCorruptError: A file cannot be parsed or the images and labels disagree.
        """
        splits = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            files = (
                paths[f"{prefix}-images-idx3-ubyte.gz"],
                paths[f"{prefix}-labels-idx1-ubyte.gz"],
            )
            images, labels = read_idx(files[0]), read_idx(files[1])
            _check_pair(images, labels, files)
            splits[split] = (images, labels)
        return splits


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al., 2017, arXiv:1708.07747): Zalando article images, same format.

    Also found in Debian's ``/usr/share/datasets/fashion-mnist/`` (package
    ``dataset-fashion-mnist``), whose re-gzipped files are accepted by their decompressed MD5.
    """

    name: ClassVar[str] = "fashion-mnist"
    # Upstream .gz sizes and MD5s; decompressed MD5s computed from the Debian files.
    source: ClassVar[Source] = Source(
        dataset="fashion-mnist",
        folder="fashion-mnist",
        files=_specs(
            ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            [
                (
                    "train-images-idx3-ubyte.gz",
                    26421880,
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    29515,
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    4422102,
                    "bef4ecab320f06d8554ea6380940ec79",
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    5148,
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            ],
        ),
        extra_dirs=("/usr/share/datasets/fashion-mnist",),
    )


class PooledMNIST(MNIST):
    """MNIST's 70,000 images as one pool, no official test split (the same four files).

    The split of Nalisnick & Smyth's code (stick-breaking_dgms, ``utils/load_data.py``):
    all 70,000 images shuffled and cut into 45,000 train / 5,000 validation / 10,000 test
    (10,000 unused). Here ``test_size`` images are carved from the pool by the fixed
    permutation every dataset without a test split uses, ``valid_size`` by ``split_seed``
    and ``train_size`` keeps the first of the rest: seeded where the authors' shuffle was
    not, so the split is the same on every run.
    """

    name: ClassVar[str] = "mnist-pooled"
    official_splits: ClassVar[tuple[str, ...]] = ("train",)

    @classmethod
    def read(cls, paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """MNIST's train and test files, concatenated: ``{"train": (images, labels)}``
        with 70,000 rows (official train first, then official test), read-only."""
        splits = MNIST.read(paths)
        images = np.concatenate([splits["train"][0], splits["test"][0]])
        labels = np.concatenate([splits["train"][1], splits["test"][1]])
        images.flags.writeable = False
        labels.flags.writeable = False
        return {"train": (images, labels)}
