"""data/variations.py: the MNIST variations' recipes, split sizes, the .amat reader."""

from __future__ import annotations

import numpy as np
import torch
from tiny_problems import blobs


def test_variation_recipes_shapes_and_ranges():
    import math

    from autoencoders.data.variations import make_variation, rotate, textures

    g = torch.Generator().manual_seed(0)
    digits = blobs(20).reshape(20, 6, 6)
    assert torch.allclose(rotate(digits, torch.zeros(20)), digits, atol=1e-5)
    twice = rotate(rotate(digits, torch.full((20,), math.pi)), torch.full((20,), math.pi))
    assert torch.allclose(twice, digits, atol=1e-4)  # a half turn on a pixel grid is exact
    t = textures(5, 28, g)
    assert t.shape == (5, 28, 28) and float(t.min()) == 0.0 and float(t.max()) == 1.0
    photos = [np.full((10, 12), 150, np.uint8), np.arange(64, dtype=np.uint8).reshape(8, 8) * 3]
    for kind in ("basic", "rot", "bg-rand", "bg-img", "rot-bg-img"):
        x = make_variation(kind, digits, torch.Generator().manual_seed(1), photos=photos)
        assert x.shape == digits.shape and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        if kind in ("bg-rand", "bg-img"):
            assert (x >= digits).all() and float(x.mean()) > float(digits.mean()) + 0.2


def _fixture_photo(tmp_path):
    """A 40x30 RGB photograph written as PNG, and its file name -> SHA-256."""
    import hashlib

    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "tiny.png")
    return rgb, {"tiny.png": hashlib.sha256((tmp_path / "tiny.png").read_bytes()).hexdigest()}


def test_photo_backgrounds_are_grey_patches_composited_by_max(tmp_path):
    """bg-img: each image is max(digit, a 6x6 window of the grey photo), and the same seed
    gives the same images."""
    from autoencoders.data.variations import load_photos, make_variation

    rgb, files = _fixture_photo(tmp_path)
    (grey,) = load_photos(tmp_path, files)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    assert grey.shape == (30, 40) and grey.dtype == np.uint8
    assert np.abs(grey - (r * 299 + g * 587 + b * 114) / 1000).max() <= 1  # ITU-R 601-2
    digits = blobs(20).reshape(20, 6, 6)
    x = make_variation("bg-img", digits, torch.Generator().manual_seed(3), photos=[grey])
    again = make_variation("bg-img", digits, torch.Generator().manual_seed(3), photos=[grey])
    assert torch.equal(x, again)
    windows = torch.from_numpy(grey / np.float32(255.0)).unfold(0, 6, 1).unfold(1, 6, 1)
    windows = windows.reshape(-1, 6, 6)
    for digit, image in zip(digits, x, strict=True):
        background = torch.where(image > digit, image, torch.tensor(-1.0))
        fits = ((background == -1) | (background == windows)).all((1, 2))
        assert fits.any() and torch.equal(image, torch.maximum(digit, windows[fits][0]))
    other = make_variation("bg-img", digits, torch.Generator().manual_seed(4), photos=[grey])
    assert not torch.equal(x, other)


def test_photos_missing_or_changed_say_what_to_do(tmp_path, monkeypatch):
    import importlib.util

    import pytest

    from autoencoders.data import variations
    from autoencoders.errors import DataCorruptError, DataMissingError

    _, files = _fixture_photo(tmp_path)
    with pytest.raises(DataCorruptError, match="differs"):
        variations.load_photos(tmp_path, {"tiny.png": "0" * 64})
    with pytest.raises(DataMissingError, match="missing"):
        variations.load_photos(tmp_path, {"absent.png": "0" * 64})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataMissingError, match=r"autoencoders\[photos\]"):
        variations.make_variation("bg-img", blobs(2).reshape(2, 6, 6),
                                  torch.Generator().manual_seed(0))


def test_generated_variation_splits_have_the_benchmark_sizes(shared_data):
    from autoencoders.data import get

    sizes = {}
    for split in ("train", "valid", "test"):
        d = get("mnist-bg-rand", split, data_dir=shared_data, valid_size=2000)
        assert d.x.shape[1:] == (1, 28, 28) and d.x.dtype == torch.float32
        assert 0.0 <= float(d.x.min()) and float(d.x.max()) <= 1.0
        assert set(d.y.unique().tolist()) == set(range(10))
        sizes[split] = len(d)
    assert sizes == {"train": 10000, "valid": 2000, "test": 50000}


def test_read_amat_plain_and_zipped(tmp_path):
    import zipfile

    from autoencoders.data.variations import read_amat

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 784)) / 255.0
    labels = np.array([3, 0, 9])
    lines = [" ".join(f"{v:.6f}" for v in row) + f" {lab}" for row, lab in zip(
        pixels, labels, strict=True)]
    amat = tmp_path / "mnist_background_random_test.amat"
    amat.write_text("\n".join(lines) + "\n")
    with zipfile.ZipFile(tmp_path / "mnist_background_random.zip", "w") as z:
        z.write(amat, amat.name)
    for source in (amat, tmp_path / "mnist_background_random.zip"):
        x, y = read_amat(source)
        assert x.shape == (3, 28, 28) and x.dtype == np.uint8 and y.tolist() == [3, 0, 9]
        assert np.array_equal(x.reshape(3, -1), np.round(pixels * 255).astype(np.uint8))


def test_scikit_image_photos_when_installed():
    """The shipped photo list matches the installed scikit-image (skipped without it)."""
    import pytest

    pytest.importorskip("skimage")
    from autoencoders.data.variations import PHOTOS, load_photos

    photos = load_photos()
    assert len(photos) == len(PHOTOS) and all(p.ndim == 2 and min(p.shape) >= 28
                                              for p in photos)
