"""CelebA (Liu et al. 2015), aligned and cropped faces, as 64 x 64 RGB for the beta-VAE.

Layout searched, in each data folder ``D`` of :func:`autoencoders.data.data_dirs`:
``D/celeba/`` then ``D/celeba_sample/`` (the 32-image sample in the shared data folder),
holding ``list_attr_celeba.txt`` and the JPEGs either in ``img_align_celeba/`` or next to
the attribute file; ``list_eval_partition.txt`` (0 train, 1 valid, 2 test) is used when
present. The official download needs manual steps (Google Drive, an agreement), so a
missing folder raises :class:`~autoencoders.errors.DataMissingError` with the placement
instructions; nothing is downloaded.

Preprocessing: the central 148 x 148 square of each 178 x 218 image (a common choice for
64 x 64 CelebA models), resized to 64 x 64 with Pillow's bilinear filter with
antialiasing. The images are decoded once, straight into a uint8 array ``(N, 64, 64, 3)``
saved as ``celeba64-<key>.npy`` in the user cache (``pooch.os_cache("autoencoders")/celeba``,
never in the data folder, which may be shared; written atomically, checked on every open
and rebuilt when damaged), keyed by the file names, sizes and the preprocessing, and
memory-mapped with ``allow_pickle=False``, so later epochs and runs never re-read the JPEGs
and the uint8 images never have to fit in RAM. A split is converted to float32 in RAM, or,
with ``data.storage`` "memmap" or "auto" when it exceeds the budget (all 202,599 images
are 9.96 GB as float32), streamed from that cache batch by batch
(:mod:`autoencoders.data.storage`). Images are in the attribute file's order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from autoencoders.data.download import Source, data_dirs
from autoencoders.data.splits import ImageData, _rows
from autoencoders.data.storage import StreamedImages, cached_uint8, over_budget, report_streaming
from autoencoders.errors import ConfigError, DataCorruptError, DataMissingError, UserError

SIZE = 64
CROP = 148
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
FOLDERS = ("celeba", "celeba_sample")

PLACEMENT = """CelebA is not downloaded automatically (the official copy is on Google Drive \
behind an agreement: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). Download \
"Align&Cropped Images" (img_align_celeba.zip) and "Attributes Annotations" \
(list_attr_celeba.txt), optionally "Train/Val/Test Partitions" (list_eval_partition.txt), \
and place them as
    {where}/celeba/list_attr_celeba.txt
    {where}/celeba/list_eval_partition.txt   (optional)
    {where}/celeba/img_align_celeba/000001.jpg ...
(unzip img_align_celeba.zip there), or pass --data-dir with a folder laid out like that."""


def find_folder(data_dir=None) -> tuple[Path, Path]:
    """``(folder with list_attr_celeba.txt, folder with the JPEGs)``.

    Raises:
        DataMissingError: no CelebA folder in any data folder (with placement steps).
    """
    looked = []
    for base in data_dirs(data_dir):
        for name in FOLDERS:
            folder = base / name
            looked.append(str(folder))
            if (folder / ATTR_FILE).is_file():
                images = folder / "img_align_celeba"
                return folder, images if images.is_dir() else folder
    where = data_dirs(data_dir)[0]
    raise DataMissingError(f"CelebA not found; looked for {ATTR_FILE} in: "
                           f"{', '.join(looked)}.\n" + PLACEMENT.format(where=where))


def read_attributes(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: a count line, the 40 attribute names, then one
    row per image (``000001.jpg  -1 1 ...``).

    Returns:
        file names, attribute names, attributes ``(N, 40)`` int8 in {-1, 1}.
    """
    try:
        lines = Path(path).read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise DataCorruptError(f"{path} is not a CelebA attribute file (not UTF-8 text: "
                               f"{err.reason} at byte {err.start}). Download it again "
                               "(`autoencoders data fetch celeba`).") from None
    try:
        count = int(lines[0].strip())
        names = lines[1].split()
        rows = [line.split() for line in lines[2:] if line.strip()]
        files = [r[0] for r in rows]
        attrs = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int8)
    except (ValueError, IndexError) as err:
        raise DataCorruptError(f"{path} is not a CelebA attribute file ({err}).") from err
    if len(rows) != count or attrs.shape[1:] != (len(names),):
        raise DataCorruptError(f"{path}: the header announces {count} rows of {len(names)} "
                               f"attributes, the file has {attrs.shape}.")
    return files, names, attrs


def preprocess(path: Path) -> np.ndarray:
    """One JPEG -> ``(64, 64, 3)`` uint8: central 148 x 148 crop, bilinear resize."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            left, top = (w - CROP) // 2, (h - CROP) // 2
            img = img.crop((left, top, left + CROP, top + CROP))
            img = img.resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL's decode errors
        raise DataCorruptError(f"CelebA image {path} cannot be decoded ({err}); the file is "
                               "damaged. Replace it with the original from the CelebA "
                               "archive (img_align_celeba.zip), then retry.") from None


def load_images(data_dir=None) -> tuple[np.ndarray, list[str], Path]:
    """All images as ``(N, 64, 64, 3)`` uint8 (decoded once, then memory-mapped from the
    cache; in RAM only when the cache cannot be written), their file names, and the folder
    they came from."""
    folder, image_dir = find_folder(data_dir)
    files, _, _ = read_attributes(folder / ATTR_FILE)
    paths = [image_dir / f for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataMissingError(f"{len(missing)} CelebA images listed in {folder / ATTR_FILE} "
                               f"are missing, e.g. {missing[0]}.\n"
                               + PLACEMENT.format(where=data_dirs(data_dir)[0]))
    h = hashlib.md5(f"{CROP}:{SIZE}".encode())
    for p in paths:
        h.update(f"{p.name}:{p.stat().st_size};".encode())
    name = f"celeba64-{h.hexdigest()[:16]}.npy"
    if name in _MEMORY:
        return _MEMORY[name], files, folder

    def decode_into(out: np.ndarray) -> None:
        for i, p in enumerate(paths):
            out[i] = preprocess(p)

    try:
        images = cached_uint8(_cache_dir() / name, (len(paths), SIZE, SIZE, 3), decode_into,
                              "celeba")
    except DataCorruptError:
        raise
    except UserError:  # an unwritable cache only costs a decode into RAM
        images = np.stack([preprocess(p) for p in paths])  # (N, 64, 64, 3)
        images.flags.writeable = False
    _MEMORY.clear()
    _MEMORY[name] = images
    return images, files, folder


_MEMORY: dict[str, np.ndarray] = {}


def _cache_dir() -> Path:
    import pooch

    return Path(pooch.os_cache("autoencoders")) / "celeba"


class CelebA:
    """CelebA aligned faces, ``(N, 3, 64, 64)``; no labels (attributes via
    :func:`read_attributes`)."""

    name: ClassVar[str] = "celeba"
    image_shape: ClassVar[tuple[int, int, int]] = (3, SIZE, SIZE)
    num_classes: ClassVar[int | None] = None
    official_splits: ClassVar[tuple[str, ...]] = ("train",)
    source: ClassVar[Source] = Source(dataset="celeba", folder="celeba", files=())

    @classmethod
    def fetch(cls, data_dir=None) -> list[Path]:
        """Nothing can be downloaded: the attribute file if CelebA is in place, else
        :class:`DataMissingError` with the placement instructions."""
        folder, _ = find_folder(data_dir)
        return [folder / ATTR_FILE]

    @classmethod
    def read(cls, paths):
        raise DataMissingError(PLACEMENT.format(where="<data dir>"))

    @classmethod
    def load(cls, split: str, *, data_dir=None, valid_size: int = 0, test_size: int = 0,
             seed: int = 0, binarize: str = "none", download: bool = True, size: int = 0,
             first: int = 0, storage: str = "memory", budget: int | None = None):
        """One split. With ``list_eval_partition.txt`` the official partition is used
        (``valid_size``/``test_size`` must then be 0); else ``test_size`` and
        ``valid_size`` images are carved from all of them. ``size`` > 0 keeps the first
        ``size`` images; ``first`` > 0 the first ``first`` of the split. ``storage``: see
        :mod:`autoencoders.data.storage`."""
        if binarize != "none":
            raise ConfigError(f"binarize = {binarize!r} does not apply to CelebA (colour "
                              "images); use binarize = \"none\".")
        images, files, folder = load_images(data_dir)
        if size:
            images, files = images[:size], files[:size]
        partition = folder / PARTITION_FILE
        if partition.is_file():
            if valid_size or test_size:
                raise ConfigError(f"{partition} gives the official split; set "
                                  "data.valid_size = 0 and data.test_size = 0.")
            try:
                part = dict(line.split() for line in
                            partition.read_bytes().decode("utf-8").splitlines()
                            if line.strip())
            except (UnicodeDecodeError, ValueError) as err:
                raise DataCorruptError(f"{partition} is not a CelebA partition file ({err}); "
                                       "download it again or delete it.") from None
            code = {"train": "0", "valid": "1", "test": "2"}[split]
            chosen = np.array([i for i, f in enumerate(files) if part.get(f) == code],
                              np.int64)
        else:
            _, chosen = _rows(cls, {"train": (files, None)}, split, valid_size, test_size,
                              seed)
        chosen = chosen[:first] if first else chosen
        if over_budget(storage, len(chosen), cls.image_shape, budget):
            path = getattr(images, "filename", None)  # None: the cache was unwritable
            report_streaming(cls.name, split, len(chosen), cls.image_shape, storage, budget,
                             path or "(in RAM: the cache could not be written)")
            x = StreamedImages(images, chosen, grey=True, path=path)
            return ImageData(name=cls.name, split=split, x=x, y=None, binarize="none")
        x = torch.from_numpy(images[chosen]).permute(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
        return ImageData(name=cls.name, split=split, x=x.to(torch.float32).div_(255.0),
                         y=None, binarize="none")
