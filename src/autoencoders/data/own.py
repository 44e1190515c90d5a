"""Your own images: a folder of PNG/JPEG files, a ``.npy``/``.npz`` array, or a loader.

Three ways in, one result: uint8 (or float32) images ``(N, H, W)`` (grey) or
``(N, H, W, 3)`` (RGB) and optional int64 labels, per official split, which
:func:`autoencoders.data.get` then splits, binarises and stores exactly as it does the
built-in data sets.

* ``folder`` (``data.path`` = a directory): every ``.png``, ``.jpg``, ``.jpeg`` file in
  it. One subfolder per class (``cats/``, ``dogs/``) gives labels (class index = the
  subfolders' sorted order); ``train/`` and ``test/`` subfolders give an official test
  split (each may hold class subfolders). ``data.image_size`` = S > 0 resizes the shorter
  side to S and crops the centre S x S (bicubic); 0 keeps the images' own size, which must
  then be the same for all. ``data.channels`` = 1 (grey), 3 (RGB) or 0 (grey when every
  file is grey, else RGB).
* ``array`` (``data.path`` = a ``.npy`` or ``.npz`` file): images ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in {1, 3}, uint8 (0..255) or float in
  [0, 1]. A ``.npz`` names them ``x`` (or ``x_train``, ``images``), labels ``y`` (or
  ``y_train``, ``labels``), and may hold an official test split ``x_test`` / ``y_test``.
* :func:`register` (``ae.datasets.register(name, loader)``): ``loader(path)`` returns
  images, or ``(images, labels)``, in any layout ``array`` accepts; ``path`` is
  ``data.path`` ("" when unset).

Splits: ``data.test_fraction`` of the images become the test split (when no official
test split is given) with the fixed seed of the built-in sets, then ``data.valid_fraction``
of them the valid split by a ``data.split_seed`` permutation; the rest is train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autoencoders.data.download import Source
from autoencoders.data.storage import cache_dir
from autoencoders.errors import ConfigError, DataCorruptError, DataMissingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_NPZ_IMAGES = ("x", "x_train", "images")
_NPZ_LABELS = ("y", "y_train", "labels")

Splits = dict[str, tuple[np.ndarray, np.ndarray | None]]


# --------------------------------------------------------------------------- arrays


def as_images(x: Any, where: str, channels: int = 0) -> np.ndarray:
    """Images in the layout the data sets use: ``(N, H, W)`` or ``(N, H, W, 3)``.

    Args:
        x: numpy array or torch tensor ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``
            with C in {1, 3}; uint8 (0..255) or float in [0, 1].
        where: what ``x`` is (a file name), for messages.
        channels: 1 turns RGB into grey (ITU-R 601 luma, as Pillow's "L"), 3 repeats
            grey into RGB, 0 keeps what ``x`` holds.

    Returns:
        uint8 images when ``x`` is uint8 (or integer 0..255), else float32 in [0, 1].

    Raises:
        DataCorruptError: wrong rank, channel count, dtype or value range.
    """
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        if x.shape[3] not in (1, 3):
            raise DataCorruptError(
                f"{where}: images of shape {x.shape} have {x.shape[3]} channels; expected "
                "(N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 (grey) or 3 (RGB).")
        if x.shape[3] == 1:
            x = x[..., 0]
    elif x.ndim != 3:
        raise DataCorruptError(
            f"{where}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W), "
            f"got shape {x.shape}.")
    if x.shape[0] == 0:
        raise DataCorruptError(f"{where} holds no images (shape {x.shape}).")
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DataCorruptError(
                f"{where}: integer images must lie in 0..255, got {x.min()}..{x.max()}.")
        x = x.astype(np.uint8)
    elif np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise DataCorruptError(
                f"{where}: float images must lie in [0, 1], got values in [{lo:.4g}, "
                f"{hi:.4g}]. Divide by 255 (8-bit images) or rescale them to [0, 1].")
        x = x.astype(np.float32)
    elif x.dtype != np.uint8:
        raise DataCorruptError(f"{where}: images must be uint8 or float, got {x.dtype}.")
    if channels == 1 and x.ndim == 4:
        weights = np.array([299, 587, 114], np.float32) / 1000
        grey = x.astype(np.float32) @ weights
        x = np.round(grey).astype(np.uint8) if x.dtype == np.uint8 else grey.astype(np.float32)
    elif channels == 3 and x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=3)
    return np.ascontiguousarray(x)


def as_labels(y: Any, n: int, where: str) -> np.ndarray | None:
    """Integer labels ``(n,)`` int64, or ``None``."""
    if y is None:
        return None
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise DataCorruptError(
            f"{where}: labels must be integers of shape ({n},) (one per image), got "
            f"{y.dtype} of shape {y.shape}.")
    if n and y.min() < 0:
        raise DataCorruptError(f"{where}: labels must be >= 0, got {y.min()}.")
    return y.astype(np.int64)


def read_array(path: str | Path, channels: int = 0) -> Splits:
    """Read a ``.npy`` (images only) or ``.npz`` (see the module docstring).

    Returns:
        ``{"train": (images, labels)}``, plus ``"test"`` when the file holds ``x_test``.

    Raises:
        DataMissingError: no such file.
        DataCorruptError: not a readable array file, or no images under a known key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(
            f"data.path = {str(path)!r}: no such file. The array data set reads a .npy "
            "(images) or .npz (x, optional y, x_test, y_test) file; give its path.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataCorruptError(
            f"{path} is not a readable .npy/.npz file ({err}). Save images with "
            "numpy.save or numpy.savez (no pickled objects).") from None
    if isinstance(loaded, np.ndarray):
        return {"train": (as_images(loaded, str(path), channels), None)}
    with loaded:
        keys = list(loaded.files)
        image_key = next((k for k in _NPZ_IMAGES if k in keys), None)
        if image_key is None:
            raise DataCorruptError(
                f"{path} holds the arrays {', '.join(keys) or '(none)'}, none named "
                f"{', '.join(_NPZ_IMAGES)}. Save the images as x (labels as y), e.g. "
                "numpy.savez(path, x=images, y=labels).")
        label_key = next((k for k in _NPZ_LABELS if k in keys), None)
        x = as_images(loaded[image_key], f"{path}[{image_key}]", channels)
        y = as_labels(loaded[label_key] if label_key else None, len(x), f"{path}[{label_key}]")
        out = {"train": (x, y)}
        if "x_test" in keys:
            xt = as_images(loaded["x_test"], f"{path}[x_test]", channels)
            yt = loaded["y_test"] if "y_test" in keys else None
            out["test"] = (xt, as_labels(yt, len(xt), f"{path}[y_test]"))
    _check_same_shape(out, str(path))
    return out


def _check_same_shape(splits: Splits, where: str) -> None:
    shapes = {name: x.shape[1:] for name, (x, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        raise DataCorruptError(f"{where}: the splits' images differ in shape ({shapes}); "
                               "train and test images must have the same size and channels.")


# --------------------------------------------------------------------------- folders


def image_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_layout(root: Path) -> dict[str, list[tuple[Path, int | None]]]:
    """``{split: [(file, label or None), ...]}`` for a folder data set.

    Raises:
        DataMissingError: ``root`` is not a folder, or holds no images.
        DataCorruptError: images both beside and inside class subfolders.
    """
    if not root.is_dir():
        raise DataMissingError(
            f"data.path = {str(root)!r} is not a folder. The folder data set reads PNG/JPEG "
            "files from a directory (one subfolder per class for labels).")
    names = {p.name for p in _class_dirs(root)}
    roots = {"train": root / "train", "test": root / "test"} if "train" in names and \
        "test" in names else {"train": root}
    beside = image_files(root)
    if len(roots) == 2 and beside:
        raise DataCorruptError(
            f"{root} has train/ and test/ subfolders and also images beside them "
            f"({beside[0].name}, ...): move those into train/ or test/.")
    out = {}
    for split, where in roots.items():
        files, classes = image_files(where), _class_dirs(where)
        classes = [c for c in classes if image_files(c)]
        if files and classes:
            raise DataCorruptError(
                f"{where} holds images ({files[0].name}, ...) and class subfolders "
                f"({classes[0].name}/, ...): put every image in a class subfolder, or "
                "none of them.")
        if classes:
            out[split] = [(f, i) for i, c in enumerate(classes) for f in image_files(c)]
        else:
            out[split] = [(f, None) for f in files]
        if not out[split]:
            raise DataMissingError(
                f"{where} holds no .png, .jpg or .jpeg images (directly or in one "
                "subfolder per class).")
    if len(roots) == 2:
        train_classes = [c.name for c in _class_dirs(roots["train"]) if image_files(c)]
        test_classes = [c.name for c in _class_dirs(roots["test"]) if image_files(c)]
        if train_classes != test_classes:
            raise DataCorruptError(
                f"{root}: train/ has the classes {train_classes} but test/ has "
                f"{test_classes}; both need the same class subfolders (or none).")
    return out


def read_folder(root: str | Path, image_size: int = 0, channels: int = 0) -> Splits:
    """Decode a folder data set (see the module docstring); cached in memory by the
    files' names, sizes and modification times.

    Raises:
        DataMissingError: no folder or no images.
        DataCorruptError: a file that is not a decodable image (named), or images of
            different sizes with ``image_size = 0``.
    """
    layout = folder_layout(Path(root))
    key = tuple((split, tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns, label)
                              for f, label in files)) for split, files in layout.items())
    return _decode_folder(str(Path(root).resolve()), key, image_size, channels)


@lru_cache(maxsize=2)
def _decode_folder(root: str, key: tuple, image_size: int, channels: int) -> Splits:
    from PIL import Image, ImageOps

    opened = {}
    modes = set()
    for split, files in key:
        opened[split] = []
        for name, _, _, label in files:
            try:
                with Image.open(name) as img:
                    img.load()
                    mode = img.mode
                    modes.add("L" if mode in GREY_MODES else "RGB")
                    opened[split].append((name, img.copy(), label))
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                raise DataCorruptError(
                    f"{name} is not a readable PNG/JPEG image ({type(err).__name__}: {err}). "
                    f"Replace or delete that file (the folder data set reads every .png, "
                    f".jpg and .jpeg file under {root}), then run again.") from None
    if channels == 0:
        channels = 1 if modes == {"L"} else 3
    mode = "L" if channels == 1 else "RGB"
    if not image_size:
        sizes = {img.size for items in opened.values() for _, img, _ in items}
        if len(sizes) > 1:
            examples = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
            raise DataCorruptError(
                f"The images under {root} have different sizes ({examples}, ...). Set "
                "data.image_size = S to resize every image's shorter side to S and crop "
                "its centre to S x S (e.g. --set data.image_size=64).")
    out = {}
    for split, items in opened.items():
        arrays, labels = [], []
        for _, img, label in items:
            img = img.convert(mode)
            if image_size:
                img = ImageOps.fit(img, (image_size, image_size), Image.BICUBIC)
            arrays.append(np.asarray(img, dtype=np.uint8))
            labels.append(label)
        x = np.stack(arrays)
        x.flags.writeable = False  # shared through the in-process cache
        y = None if labels[0] is None else np.array(labels, np.int64)
        out[split] = (x, y)
    return out


# --------------------------------------------------------------------------- data sets


class OwnData:
    """Base of the user data sets: ``splits(path, image_size, channels)`` gives the
    official splits; :func:`autoencoders.data.get` carves, stores and caches them."""

    user: ClassVar[bool] = True
    name: ClassVar[str] = ""
    num_classes: ClassVar[int | None] = None
    source: ClassVar[Source] = Source(dataset="own", folder="own", files=())

    @classmethod
    def splits(cls, path: str, image_size: int, channels: int) -> Splits:
        raise NotImplementedError

    @classmethod
    def digest(cls, path: str, image_size: int, channels: int) -> str:
        """A key of the data's current contents, for the on-disk streaming cache."""
        stats = []
        target = Path(path) if path else None
        if target is not None and target.exists():
            files = [target] if target.is_file() else sorted(
                p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            for f in files:
                st = f.stat()
                stats.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
        text = repr((cls.name, stats, image_size, channels))
        return hashlib.md5(text.encode()).hexdigest()[:16]


class FolderData(OwnData):
    """Your PNG/JPEG images in a folder (data.path); labels from one subfolder per class."""

    name: ClassVar[str] = "folder"

    @classmethod
    def splits(cls, path: str, image_size: int, channels: int) -> Splits:
        if not path:
            raise ConfigError('data.name = "folder" needs data.path = the folder of images, '
                              'e.g. --set data.path=my_images.')
        return read_folder(path, image_size, channels)


class ArrayData(OwnData):
    """Your images in a .npy or .npz file (data.path); labels optional."""

    name: ClassVar[str] = "array"

    @classmethod
    def splits(cls, path: str, image_size: int, channels: int) -> Splits:
        if not path:
            raise ConfigError('data.name = "array" needs data.path = a .npy or .npz file, '
                              'e.g. --set data.path=images.npz.')
        out = read_array(path, channels)
        _check_size(out, image_size, path)
        return out


def _check_size(splits: Splits, image_size: int, where: str) -> None:
    shape = splits["train"][0].shape[1:3]
    if image_size and shape != (image_size, image_size):
        raise ConfigError(
            f"data.image_size = {image_size}, but the images in {where} are {shape[0]}x"
            f"{shape[1]}: arrays are used at their own size. Set data.image_size = 0 "
            "(or resize the array yourself).")


def registered(name: str, loader: Callable[[str], Any]) -> type:
    """A data set class whose images come from ``loader(path)`` (see :func:`register`)."""

    def splits(cls, path: str, image_size: int, channels: int) -> Splits:
        result = loader(path)
        x, y = result if isinstance(result, tuple) else (result, None)
        images = as_images(x, f"data set {name!r}", channels)
        out = {"train": (images, as_labels(y, len(images), f"data set {name!r}"))}
        _check_size(out, image_size, f"data set {name!r}")
        return out

    def digest(cls, path: str, image_size: int, channels: int) -> str:
        x = cls.splits(path, image_size, channels)["train"][0]
        return hashlib.md5(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]

    return type(f"Registered_{name}", (OwnData,), {
        "__doc__": f"Images from the loader registered as {name!r}.", "name": name,
        "splits": classmethod(splits), "digest": classmethod(digest)})


def save_array(x: Any, labels: Any = None) -> Path:
    """Store in-memory images (and labels) as a ``.npz`` the ``array`` data set reads.

    The file goes to the user cache, named by a hash of its contents, so a run trained
    on ``ae.train(cfg, train_data=x)`` can be evaluated, plotted and resumed later (its
    ``data.path`` names the file). Written once (temp file + rename).

    Args:
        x: images as :func:`as_images` accepts them (array or tensor).
        labels: ``(N,)`` integers, or ``None``.

    Returns:
        The path of the ``.npz``.
    """
    import os

    images = as_images(x, "train_data")
    y = as_labels(labels, len(images), "train_labels")
    h = hashlib.sha256(images.tobytes())
    h.update(repr((images.shape, images.dtype.str)).encode())
    if y is not None:
        h.update(y.tobytes())
    path = cache_dir("own") / f"array-{h.hexdigest()[:20]}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        arrays = {"x": images} if y is None else {"x": images, "y": y}
        np.savez(tmp, **arrays)
        tmp.replace(path)
    return path
