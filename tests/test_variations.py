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
    for kind in ("basic", "rot", "bg-rand", "bg-img", "rot-bg-img"):
        x = make_variation(kind, digits, torch.Generator().manual_seed(1))
        assert x.shape == digits.shape and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        if kind in ("bg-rand", "bg-img"):
            assert (x >= digits).all() and float(x.mean()) > float(digits.mean()) + 0.2


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
