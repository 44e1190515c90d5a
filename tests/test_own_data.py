"""Your own data: folders of real PNG/JPEG files, .npy/.npz arrays, registered loaders and
in-memory arrays, through the API and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import autoencoders as ae
from autoencoders import data
from autoencoders.cli import main
from autoencoders.config import load_experiment
from autoencoders.errors import ConfigError, DataCorruptError, DataMissingError

FAST = ["train.epochs=1", "train.threads=1", "train.batch_size=16", "eval.iw_samples=5",
        "model.hidden=32", "model.latent_dim=2", 'eval.figures=["curves", '
        '"reconstructions", "samples", "manifold"]']


def digits(n: int, size: int = 28, seed: int = 0) -> np.ndarray:
    """``n`` grey images (uint8) with a bright square whose place depends on the class."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, size, size)) * 60).astype(np.uint8)
    for i in range(n):
        r = 4 + 8 * (i % 2)
        x[i, r:r + 8, r:r + 8] = 250
    return x


def write_folder(root: Path, n: int = 64, classes: bool = True, fmt: str = "PNG") -> Path:
    """``n`` images encoded by Pillow into ``root`` (``a/``, ``b/`` when ``classes``)."""
    suffix = ".png" if fmt == "PNG" else ".jpg"
    for i, img in enumerate(digits(n)):
        folder = root / ("ab"[i % 2]) if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(folder / f"img{i:03d}{suffix}", format=fmt)
    return root


def test_folder_reads_png_bytes_with_labels_and_splits(tmp_path):
    root = write_folder(tmp_path / "imgs")
    splits = {s: data.get("folder", s, path=str(root)) for s in ("train", "valid", "test")}
    sizes = {s: len(d) for s, d in splits.items()}
    assert sizes == {"train": 52, "valid": 6, "test": 6}  # 10 % test, then 10 % valid
    assert splits["train"].x.shape[1:] == (1, 28, 28)
    # PNG is lossless: the tensor is the generated image / 255, label = class subfolder
    by_class = {0: digits(64)[0::2], 1: digits(64)[1::2]}
    x0, y0 = splits["test"].x[0, 0], int(splits["test"].y[0])
    assert any(torch.equal(x0, torch.from_numpy(im).float() / 255) for im in by_class[y0])
    # a different split_seed moves valid images but never the test split
    other = data.get("folder", "test", path=str(root), seed=5)
    assert torch.equal(other.x, splits["test"].x)
    assert not torch.equal(data.get("folder", "valid", path=str(root), seed=5).x,
                           splits["valid"].x)


def test_folder_jpeg_rgb_resize_and_official_test_split(tmp_path):
    root = tmp_path / "photos"
    for split, n in (("train", 20), ("test", 5)):
        for i in range(n):
            (root / split).mkdir(parents=True, exist_ok=True)
            rgb = np.zeros((40, 30, 3), np.uint8)
            rgb[..., i % 3] = 200
            Image.fromarray(rgb).save(root / split / f"{i}.jpg", format="JPEG", quality=95)
    train = data.get("folder", "train", path=str(root), image_size=16, valid_size=0,
                     valid_fraction=0.0)
    test = data.get("folder", "test", path=str(root), image_size=16)
    assert train.x.shape == (20, 3, 16, 16) and test.x.shape == (5, 3, 16, 16)
    assert train.y is None
    # colour survives the JPEG round trip: image 1 is green
    assert train.x[1, 1].mean() > 0.7 and train.x[1, 0].mean() < 0.1
    grey = data.get("folder", "train", path=str(root), image_size=16, channels=1,
                    valid_fraction=0.0)
    assert grey.x.shape == (20, 1, 16, 16)
    with pytest.raises(DataCorruptError, match="image_size"):  # 40x30 vs no resize: fine,
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "small.png")
        data.get("folder", "train", path=str(root))  # but now the sizes differ


def test_corrupt_image_names_the_file(tmp_path, capsys):
    root = write_folder(tmp_path / "imgs", n=10)
    bad = root / "a" / "broken.png"
    png = io.BytesIO()
    Image.fromarray(digits(1)[0]).save(png, format="PNG")
    bad.write_bytes(png.getvalue()[:60])  # a truncated PNG
    with pytest.raises(DataCorruptError) as err:
        data.get("folder", "train", path=str(root))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    code = main(["train", "vae-mnist", "--set", "data.name=folder", "--set",
                 f"data.path={root}", "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    assert code == 2
    out = capsys.readouterr().err
    assert "broken.png" in out and "Traceback" not in out


def test_folder_errors(tmp_path):
    with pytest.raises(DataMissingError, match="not a folder"):
        data.get("folder", "train", path=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataMissingError, match="no .png"):
        data.get("folder", "train", path=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="data.path"):
        load_experiment("vae-mnist", overrides=["data.name=folder"])
    with pytest.raises(ConfigError, match="built-in 'mnist'"):
        load_experiment("vae-mnist", overrides=["data.path=x"])
    with pytest.raises(ConfigError, match="data.channels"):
        load_experiment("vae-mnist", overrides=["data.name=folder", "data.path=x",
                                                "data.channels=2"])
    few = write_folder(tmp_path / "few", n=1, classes=False)
    with pytest.raises(ConfigError, match="none is left to train on"):
        data.get("folder", "train", path=str(few), valid_fraction=0.9)


def test_array_npz_npy_layouts_and_float_range(tmp_path):
    x = digits(40)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 2, x_test=x[:7], y_test=np.zeros(7, int))
    train = data.get("array", "train", path=str(tmp_path / "d.npz"))
    test = data.get("array", "test", path=str(tmp_path / "d.npz"))
    assert len(test) == 7 and len(train) == 36  # official test kept; 10 % of 40 to valid
    assert train.x.shape[1:] == (1, 28, 28) and train.y.dtype == torch.int64
    chw = np.random.default_rng(0).random((30, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "c.npy", chw)
    a = data.get("array", "train", path=str(tmp_path / "c.npy"), test_fraction=0,
                 valid_fraction=0)
    assert torch.equal(a.x, torch.from_numpy(chw))  # float images kept exactly, NCHW
    np.save(tmp_path / "hwc.npy", chw.transpose(0, 2, 3, 1))
    b = data.get("array", "train", path=str(tmp_path / "hwc.npy"), test_fraction=0,
                 valid_fraction=0)
    assert torch.equal(b.x, a.x)
    np.save(tmp_path / "bad.npy", chw * 255)
    with pytest.raises(DataCorruptError, match=r"\[0, 1\]"):
        data.get("array", "train", path=str(tmp_path / "bad.npy"))
    np.savez(tmp_path / "nokey.npz", pictures=x)
    with pytest.raises(DataCorruptError, match="none named x"):
        data.get("array", "train", path=str(tmp_path / "nokey.npz"))
    with pytest.raises(ConfigError, match="memmap"):
        data.get("array", "train", path=str(tmp_path / "c.npy"), storage="memmap")


def test_memmap_storage_is_bit_identical_for_own_data(tmp_path):
    root = write_folder(tmp_path / "imgs", n=30)
    for binarize, split in (("none", "train"), ("static", "valid"), ("dynamic", "test")):
        mem = data.get("folder", split, path=str(root), binarize=binarize, storage="memory")
        streamed = data.get("folder", split, path=str(root), binarize=binarize,
                            storage="memmap")
        assert isinstance(streamed.x, data.StreamedImages)
        assert torch.equal(streamed.x[:], mem.x)


def test_register_a_loader(tmp_path):
    x = torch.from_numpy(digits(30)).float().div(255)
    data.register("squares-test", lambda path: (x, torch.arange(30) % 2))
    try:
        with pytest.raises(ConfigError, match="already registered"):
            data.register("squares-test", lambda path: x)
        with pytest.raises(ConfigError, match="built-in"):
            data.register("mnist", lambda path: x)
        cfg = load_experiment("vae-mnist", overrides=["data.name=squares-test", *FAST])
        run = ae.train(cfg, runs_dir=str(tmp_path / "runs"), progress=False)
        assert len(run.metrics()) == 1
        assert "valid/loss" in run.metrics()[0]
        assert "squares-test" in data.DATASETS
        row = next(r for r in data.describe() if r["dataset"] == "squares-test")
        assert row["where"] == "registered with ae.datasets.register"
    finally:
        data.DATASETS.pop("squares-test", None)


def test_api_train_on_an_array_then_evaluate_and_plot(tmp_path):
    x = digits(64)
    cfg = load_experiment("vae-mnist", overrides=FAST)
    run = ae.train(cfg, runs_dir=str(tmp_path / "runs"), progress=False, train_data=x,
                   train_labels=np.arange(64) % 2)
    saved = json.loads((run.path / "config.json").read_text())["data"]
    assert saved["name"] == "array" and Path(saved["path"]).is_file()
    result = ae.evaluate(run, progress=False)
    assert result["n_test"] == 6 and np.isfinite(result["test/log_px"])
    figures = {p.name for p in ae.plot(run)}
    assert {"reconstructions.png", "samples.png", "manifold.png"} <= figures


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_cli_reproduce_on_own_data(tmp_path, kind, capsys):
    """Acceptance: one epoch of the VAE on 64 generated PNGs / an .npz through the CLI,
    then the figures and report."""
    if kind == "folder":
        path = write_folder(tmp_path / "imgs")
        name = "folder"
    else:
        path = tmp_path / "d.npz"
        np.savez(path, x=digits(64), y=np.arange(64) % 2)
        name = "array"
    args = ["reproduce", "vae-mnist", "--set", f"data.name={name}", "--set",
            f"data.path={path}", "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    for item in FAST:
        args += ["--set", item]
    assert main(args) == 0
    run_dir = next((tmp_path / "runs" / "vae-mnist").iterdir())
    for fig in ("curves", "reconstructions", "samples", "manifold"):
        png = run_dir / "figures" / f"{fig}.png"
        assert png.is_file() and Image.open(png).size[0] > 50
    assert (run_dir / "report.md").is_file()
    assert json.loads((run_dir / "eval.json").read_text())["n_test"] == 6


EVERY_MODEL = {  # one experiment per model, shrunk to seconds
    "vae-mnist": ["model.hidden=16"],
    "betavae-celeba": ["data.image_size=64", "data.channels=3", "data.size=0", "model.conv_fc=32",
                       "model.conv_channels=[8, 8, 8, 8]", "model.latent_dim=4",
                       "eval.metrics=[]"],
    "sbvae-mnist": ["model.hidden=16", "model.truncation=5", "train.early_stopping=0",
                    "data.train_size=0", "eval.knn_k=[3]"],
    "dae-filters": ["model.hidden=16"],
    "ksparse-classify": ["model.hidden=32", "model.k=5", "model.k_start=10",
                         "eval.feature_alphas=[]", "eval.logreg_C=[1.0]"],
    "sda-mnist-basic": ["model.hidden=[16, 16]", "model.noise=[0.25, 0.25]",
                        "model.pretrain_epochs=1", "train.early_stopping=0",
                        "data.train_size=0"],
}


@pytest.mark.parametrize("experiment", sorted(EVERY_MODEL))
def test_every_model_trains_and_evaluates_on_a_folder(tmp_path, experiment):
    """Any model trains on your images: one experiment per registered model, labels from
    the class subfolders where the model or its probes need them."""
    from autoencoders.pipeline import evaluate, train_stages
    from autoencoders.registry import MODELS

    root = write_folder(tmp_path / "imgs", n=40)
    if experiment == "betavae-celeba":  # colour photos at another size
        for png in root.rglob("*.png"):
            Image.open(png).convert("RGB").resize((70, 80)).save(png)
    cfg = load_experiment(experiment, overrides=[
        "data.name=folder", f"data.path={root}", "train.epochs=1", "train.threads=1",
        "train.batch_size=8", "eval.iw_samples=3", *EVERY_MODEL[experiment]])
    run = train_stages(cfg, ae.Run.create(cfg, tmp_path / "runs"), progress=False)
    result = evaluate(run, progress=False)
    assert result["n_test"] == 4 and all(np.isfinite(v) for k, v in result.items()
                                          if k.startswith("test/"))
    model = run.load_model()
    assert type(model) is MODELS[cfg.model_name]
    x = data.get("folder", "test", path=str(root), image_size=cfg.data.image_size,
                 channels=cfg.data.channels).x[:2]
    assert model.reconstruct(x).shape == x.shape  # the model works in the folder's shape
