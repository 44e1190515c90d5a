"""Denoising and k-sparse autoencoders, and the logistic-regression probe on codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoencoders.errors import ConfigError
from autoencoders.evaluation.features import encode_dataset, logistic_regression_probe
from autoencoders.models.dae import DenoisingAE, DenoisingAEConfig, mask_noise
from autoencoders.models.ksparse import KSparseAE, KSparseAEConfig, k_schedule, topk, topk_mask

SHAPE = (1, 6, 6)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a loaded, shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _blobs(n: int = 256, seed: int = 0) -> torch.Tensor:
    """Tiny binary images: each lights one of 4 fixed 6x6 patterns with a few flips."""
    g = torch.Generator().manual_seed(seed)
    patterns = (torch.rand(4, *SHAPE, generator=g) < 0.4).float()
    x = patterns[torch.randint(0, 4, (n,), generator=g)]
    flips = torch.rand(x.shape, generator=g) < 0.05
    return torch.where(flips, 1 - x, x)


# --------------------------------------------------------------------------- k-sparse


def test_topk_keeps_exactly_k_per_row_and_the_largest():
    h = torch.randn(50, 40, generator=torch.Generator().manual_seed(0))
    for k in (1, 7, 40):
        mask = topk_mask(h, k)
        assert (mask.sum(1) == k).all()
        kept_min = torch.where(mask, h, torch.inf).min(1).values
        dropped_max = torch.where(mask, -torch.inf, h).max(1).values
        assert (kept_min > dropped_max).all()
        z = topk(h, k)
        assert torch.equal(z[mask], h[mask]) and (z[~mask] == 0).all()


def test_topk_gradient_flows_only_through_kept_units():
    h = torch.randn(8, 30, generator=torch.Generator().manual_seed(1), requires_grad=True)
    upstream = torch.randn(8, 30, generator=torch.Generator().manual_seed(2))
    (topk(h, 5) * upstream).sum().backward()
    mask = topk_mask(h.detach(), 5)
    assert torch.equal(h.grad[mask], upstream[mask])
    assert (h.grad[~mask] == 0).all()


def test_k_schedule_decreases_linearly_and_reaches_the_target():
    ks = [k_schedule(e, 10, 100, 25, 0.5) for e in range(10)]
    assert ks[0] == 100 and ks[5:] == [25] * 5
    assert all(a > b for a, b in zip(ks[:5], ks[1:6], strict=True))
    assert k_schedule(0, 1, 100, 25, 0.5) == 25  # one epoch: the target at once


def test_ksparse_model_schedule_and_code_sparsity():
    cfg = KSparseAEConfig(hidden=64, k=5, k_start=40, alpha=3.0)
    model = KSparseAE(cfg, SHAPE)
    x = _blobs(32)
    model.on_epoch_start(0, 4)
    assert model.k == 40 and ((model.encode(x) != 0).sum(1) <= 40).all()
    model.on_epoch_start(2, 4)
    assert model.k == 5
    assert ((model.encode(x) != 0).sum(1) == 5).all()
    assert ((model.features(x) != 0).sum(1) == 15).all()  # alpha * k
    assert ((model.features(x, alpha=2) != 0).sum(1) == 10).all()


def test_ksparse_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="model.k = 0"):
        KSparseAEConfig(hidden=10, k=0).validate()
    with pytest.raises(ConfigError, match="k_start = 5"):
        KSparseAEConfig(hidden=100, k=10, k_start=5).validate()


def _fit(model, x, steps: int = 300, lr: float = 0.01) -> tuple[float, float]:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.eval()
    with torch.no_grad():
        before = float(model.loss(x).total)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(x).total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return before, float(model.loss(x).total)


def test_ksparse_learns_a_tiny_problem():
    x = _blobs()
    model = KSparseAE(KSparseAEConfig(hidden=32, k=4, k_start=4), SHAPE)
    before, after = _fit(model, x)
    # 4 patterns, 5 % flips: the floor is the flip noise, about 36 * 0.05 = 1.8 per image
    assert after < 0.25 * before and after < 3.0


# --------------------------------------------------------------------------- denoising


def test_mask_noise_has_the_configured_rate():
    x = torch.ones(200, 1, 28, 28)
    for nu in (0.1, 0.25, 0.5):
        frac = float((mask_noise(x, nu, torch.Generator().manual_seed(0)) == 0).float().mean())
        assert abs(frac - nu) < 0.005  # 156,800 pixels: standard error < 0.0013
    assert mask_noise(x, 0.0) is x


def test_dae_noise_only_in_training_mode():
    x = _blobs(64)
    model = DenoisingAE(DenoisingAEConfig(hidden=16, noise=0.5), SHAPE)
    model.eval()
    with torch.no_grad():
        a, b = float(model.loss(x).total), float(model.loss(x).total)
    assert a == b  # deterministic: no noise in eval mode
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        c = float(model.loss(x).total)
        torch.manual_seed(1)
        d = float(model.loss(x).total)
    assert c != d and c != a  # noise is drawn in training mode


def test_dae_untied_has_its_own_decoder_and_tied_shares():
    tied = DenoisingAE(DenoisingAEConfig(hidden=16, tied=True), SHAPE)
    untied = DenoisingAE(DenoisingAEConfig(hidden=16, tied=False), SHAPE)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == 16 * 36


@pytest.mark.parametrize("tied", [True, False])
def test_dae_learns_to_denoise_a_tiny_problem(tied):
    x = _blobs()
    model = DenoisingAE(DenoisingAEConfig(hidden=16, noise=0.25, tied=tied), SHAPE)
    before, after = _fit(model, x, steps=400, lr=0.03)
    assert after < 0.5 * before
    # denoising: reconstructing corrupted inputs is far better than the corrupted input
    xc = model.corrupt(x, torch.Generator().manual_seed(3))
    err_rec = float((model.reconstruct(xc).round() != x).float().mean())
    err_in = float((xc != x).float().mean())
    assert err_rec < 0.5 * err_in


# --------------------------------------------------------------------------- probes


def _split_codes(z: np.ndarray, y: np.ndarray):
    return z[:600], y[:600], z[600:800], y[600:800], z[800:], y[800:]


def test_logreg_probe_oracles():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1200)
    informative = np.eye(10)[y] + 0.1 * rng.standard_normal((1200, 10))
    res = logistic_regression_probe(*_split_codes(informative, y))
    assert res["test_error"] < 1.0
    noise = rng.standard_normal((1200, 10))
    res = logistic_regression_probe(*_split_codes(noise, y))
    assert 80.0 < res["test_error"] < 100.0
    assert res["C"] in res["valid_errors"]


def test_encode_dataset_uses_eval_mode_and_batches():
    model = DenoisingAE(DenoisingAEConfig(hidden=8, noise=0.5), SHAPE)
    model.train()
    x = _blobs(50)
    z = encode_dataset(model, x, batch=7)
    assert z.shape == (50, 8) and model.training
    assert np.allclose(z, model.features(x).detach().numpy(), atol=1e-6)


# --------------------------------------------------------------------------- end to end


def test_ksparse_classify_end_to_end_on_a_slice_of_mnist(tmp_path, shared_data):
    """reproduce -> logreg probe chooses alpha and C on valid; figures and report exist."""
    from autoencoders.config import load_experiment
    from autoencoders.pipeline import reproduce

    cfg = load_experiment("ksparse-classify", "quick", [
        f"data.data_dir={shared_data}", "data.train_size=1000", "data.valid_size=500",
        "train.epochs=4", "model.hidden=64", "model.k=10", "model.k_start=20",
        "eval.logreg_train_size=1000", "eval.feature_alphas=[1.0, 2.0]",
        "eval.logreg_C=[0.1, 1.0]"])
    run = reproduce(cfg, runs_dir=str(tmp_path), progress=False)
    ev = run.eval_results()
    assert ev["logreg_alpha"] in (1.0, 2.0) and ev["logreg_C"] in (0.1, 1.0)
    assert ev["logreg_train_examples"] == 1000
    assert 0.0 <= ev["test/logreg_error"] < 60.0  # far better than chance (90 %)
    assert (run.path / "figures" / "filters.png").is_file()
    assert "logistic regression" in (run.path / "report.md").read_text()


def test_dae_filters_sweep_puts_filters_side_by_side(tmp_path, shared_data):
    from PIL import Image

    from autoencoders.config import load_experiment
    from autoencoders.pipeline import reproduce

    cfg = load_experiment("dae-filters", "quick", [
        f"data.data_dir={shared_data}", "data.train_size=300", "data.valid_size=200",
        "train.epochs=1", "model.hidden=16"])
    parent = reproduce(cfg, runs_dir=str(tmp_path), progress=False)
    one = Image.open(parent.path / "noise=0%" / "figures" / "filters.png")
    both = Image.open(parent.path / "figures" / "filters.png")
    assert both.width > 3 * one.width and both.height > one.height
    assert (parent.path / "figures" / "denoising.png").is_file()
    assert "figures/filters.png" in (parent.path / "report.md").read_text()


# --------------------------------------------------------------------------- stacked DAE


def _sda_experiment(tmp_path, pretrain: bool = True, epochs: int = 1):
    """A tiny SdA-2 on 64 synthetic 6x6 images (4 classes), through the real trainer."""
    from autoencoders.config import from_dict

    return from_dict({
        "experiment": {"name": "sda-tiny"},
        "model": {"name": "sda", "hidden": [12, 8], "noise": [0.25, 0.1], "num_classes": 4,
                  "pretrain": pretrain, "pretrain_epochs": 2, "pretrain_lr": 0.01},
        "data": {"name": "tiny-blobs", "valid_size": 16},
        "train": {"epochs": epochs, "batch_size": 16, "lr": 0.01, "optimizer": "adam"},
        "eval": {"iw_samples": 0, "figures": []},
    })


@pytest.fixture
def tiny_blobs_dataset(monkeypatch):
    """Register a 4-class synthetic dataset served by the data layer's ``get``."""
    import importlib

    from autoencoders import data
    from autoencoders.data import ImageData

    load_mod = importlib.import_module("autoencoders.data.load")

    class TinyBlobs:
        name = "tiny-blobs"
        image_shape = SHAPE
        num_classes = 4

    g = torch.Generator().manual_seed(0)
    patterns = (torch.rand(4, *SHAPE, generator=g) < 0.4).float()
    y_all = torch.randint(0, 4, (96,), generator=g)
    x_all = patterns[y_all]

    def fake_get(name, split="train", *, valid_size=0, **kw):
        rows = {"train": slice(0, 64), "valid": slice(64, 80), "test": slice(80, 96)}[split]
        return ImageData(name, split, x_all[rows].clone(), y_all[rows].clone(), "none")

    monkeypatch.setitem(data.DATASETS, "tiny-blobs", TinyBlobs)
    monkeypatch.setattr(load_mod, "get", fake_get)
    return x_all, y_all


def test_sda_stages_plan_pretraining_then_finetuning():
    from autoencoders.models.sda import StackedDAE, StackedDAEConfig

    cfg = StackedDAEConfig(hidden=[5, 4, 3], noise=[0.1, 0.2, 0.3], pretrain_epochs=7)
    plan = StackedDAE.stages(cfg)
    assert [label for label, _ in plan] == ["pretrain-1", "pretrain-2", "pretrain-3",
                                            "finetune"]
    assert plan[1][1]["model.stage"] == 2 and plan[1][1]["train.epochs"] == 7
    assert plan[-1][1] == {"model.stage": 0}
    cfg.pretrain = False
    assert StackedDAE.stages(cfg) == [("finetune", {"model.stage": 0})]


def test_sda_finetuning_starts_from_the_pretrained_weights(tmp_path, tiny_blobs_dataset):
    """Greedy pre-training changes only its own layer, and stage 0 starts from its result."""
    from safetensors.torch import load_file

    from autoencoders.pipeline import train_stages
    from autoencoders.runs import Run
    from autoencoders.train import init_weights_

    cfg = _sda_experiment(tmp_path)
    run = train_stages(cfg, Run.create(cfg, tmp_path / "runs"), progress=False)
    p1, p2 = Run.load(run.path / "pretrain-1"), Run.load(run.path / "pretrain-2")
    w1, _ = p1.load_checkpoint()
    w2, _ = p2.load_checkpoint()
    assert run.config.train.init_from == str(p2.path) and run.config.model.stage == 0
    assert p2.config.train.init_from == str(p1.path)
    # stage 2 kept layer 1 exactly as stage 1 left it, and trained layer 2
    assert torch.equal(w1["layers.0.weight"], w2["layers.0.weight"])
    assert not torch.equal(w1["layers.1.weight"], w2["layers.1.weight"])

    # the fine-tuning stage begins with exactly the pre-trained weights
    from autoencoders.registry import build_model

    fresh = build_model(run.config.model, SHAPE)
    assert not torch.equal(fresh.layers[0].weight, w2["layers.0.weight"])
    copied = init_weights_(fresh, str(p2.path))
    assert "layers.0.weight" in copied and "layers.1.weight" in copied
    assert torch.equal(fresh.layers[1].weight, w2["layers.1.weight"])
    # ...and one fine-tuning step with a tiny learning rate stays next to them
    raw = run.config.to_dict()
    raw["train"].update(lr=1e-9, optimizer="sgd", epochs=1)
    from autoencoders.config import from_dict
    from autoencoders.train import train

    one = train(from_dict(raw), runs_dir=str(tmp_path / "one"), progress=False,
                log_epochs=False, stop_after_steps=1)
    w_one = load_file(str(next((one.path / "checkpoints").glob("model-*.safetensors"))))
    for name in ("layers.0.weight", "layers.1.weight"):
        assert torch.allclose(w_one[name], w2[name], atol=1e-6)


def test_sda_finetuned_net_classifies_and_baseline_is_random_init(tmp_path,
                                                                  tiny_blobs_dataset):
    from autoencoders.pipeline import evaluate, train_stages
    from autoencoders.runs import Run

    cfg = _sda_experiment(tmp_path, epochs=15)
    run = train_stages(cfg, Run.create(cfg, tmp_path / "runs"), progress=False)
    assert evaluate(run, progress=False)["test/error"] < 20.0  # 4 classes: chance is 75 %
    base = _sda_experiment(tmp_path, pretrain=False)
    brun = train_stages(base, Run.create(base, tmp_path / "base"), progress=False)
    assert brun.config.train.init_from == ""
    assert not (brun.path / "pretrain-1").exists()


# --------------------------------------------------------------------------- variations


def test_variation_recipes_shapes_and_ranges():
    import math

    from autoencoders.data.variations import make_variation, rotate, textures

    g = torch.Generator().manual_seed(0)
    digits = _blobs(20).reshape(20, 6, 6)
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
