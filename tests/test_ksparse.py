"""models/ksparse.py: top-k, the k schedule, the model on a tiny problem, and the
ksparse-classify experiment end to end."""

from __future__ import annotations

import pytest
import torch
from tiny_problems import SHAPE, blobs, fit, one_thread  # noqa: F401

from autoencoders.errors import ConfigError
from autoencoders.models.ksparse import KSparseAE, KSparseAEConfig, k_schedule, topk, topk_mask

pytestmark = pytest.mark.usefixtures("one_thread")


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
    x = blobs(32)
    model.on_epoch_start(0, 4)
    assert model.k == 40 and ((model.encode(x) != 0).sum(1) <= 40).all()
    model.on_epoch_start(2, 4)
    assert model.k == 5
    assert ((model.encode(x) != 0).sum(1) == 5).all()
    assert ((model.features(x) != 0).sum(1) == 15).all()  # alpha * k
    assert ((model.features(x, alpha=2) != 0).sum(1) == 10).all()


def test_dead_units_are_the_units_never_in_the_target_top_k():
    cfg = KSparseAEConfig(hidden=8, k=2, k_start=2, init_std=0.0)
    model = KSparseAE(cfg, SHAPE)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([5.0, 4.0, 0, 0, 0, 0, 0, 0]))  # units 0, 1 always win
    x = blobs(16)
    usage = model.unit_usage(x, batch=5)
    assert usage.tolist() == [16, 16, 0, 0, 0, 0, 0, 0]
    assert model.diagnostics(x) == {"dead_units": 0.75}
    model.on_epoch_start(0, 10)  # the schedule's k does not change the measure
    assert model.diagnostics(x) == {"dead_units": 0.75}


def test_sgd_momentum_reaches_the_optimizer_and_other_optimizers_refuse_it():
    from autoencoders.config import TrainConfig
    from autoencoders.train import make_optimizer

    tc = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9)
    tc.validate()
    opt = make_optimizer(torch.nn.Linear(2, 2), tc)
    assert opt.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ConfigError, match="train.momentum = 0.9"):
        TrainConfig(optimizer="adam", momentum=0.9).validate()
    with pytest.raises(ConfigError, match="train.momentum"):
        TrainConfig(optimizer="sgd", momentum=1.0).validate()


def test_ksparse_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="model.k = 0"):
        KSparseAEConfig(hidden=10, k=0).validate()
    with pytest.raises(ConfigError, match="k_start = 5"):
        KSparseAEConfig(hidden=100, k=10, k_start=5).validate()


def test_ksparse_learns_a_tiny_problem():
    x = blobs()
    model = KSparseAE(KSparseAEConfig(hidden=32, k=4, k_start=4), SHAPE)
    before, after = fit(model, x)
    # 4 patterns, 5 % flips: the floor is the flip noise, about 36 * 0.05 = 1.8 per image
    assert after < 0.25 * before and after < 3.0


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
    assert 0.0 <= ev["valid/dead_units"] <= 1.0  # diagnostics of the evaluated weights
    assert 0.0 <= ev["test/logreg_error"] < 60.0  # far better than chance (90 %)
    assert (run.path / "figures" / "filters.png").is_file()
    assert "logistic regression" in (run.path / "report.md").read_text()


def test_centering_is_a_reparameterisation_of_the_biases():
    """center: the code of x is that of the uncentred model with b - W m, the
    reconstruction the same, and m is the train mean, set once by the data hook."""
    x = blobs(32) + 0.5  # a large component shared by every image
    cfg = KSparseAEConfig(hidden=16, k=3, k_start=3, center=True)
    torch.manual_seed(0)
    centred = KSparseAE(cfg, SHAPE)
    centred.init_from_data(x, batch=5)  # in chunks, as the trainer streams large splits
    torch.testing.assert_close(centred.input_mean, x.flatten(1).mean(0))
    plain = KSparseAE(KSparseAEConfig(hidden=16, k=3, k_start=3), SHAPE)
    with torch.no_grad():
        plain.weight.copy_(centred.weight)
        plain.bias.copy_(centred.bias - centred.weight @ centred.input_mean)
        plain.out_bias.copy_(centred.out_bias + centred.input_mean)
    torch.testing.assert_close(centred.encode(x), plain.encode(x))
    torch.testing.assert_close(centred.decode(centred.encode(x)), plain.decode(plain.encode(x)))
    assert "input_mean" in centred.state_dict() and "input_mean" not in plain.state_dict()


def test_centering_keeps_units_alive_where_a_shared_component_kills_them():
    """Images = a large common image + small patterns: without centring the units that
    match the common image win every time and the rest never learn; centred, all live."""
    g = torch.Generator().manual_seed(0)
    common = torch.rand(1, *SHAPE, generator=g)
    x = 3.0 * common + 0.3 * blobs(256)
    dead = {}
    for center in (False, True):
        torch.manual_seed(0)
        model = KSparseAE(KSparseAEConfig(hidden=32, k=2, k_start=2, center=center), SHAPE)
        model.init_from_data(x)
        fit(model, x)
        dead[center] = model.diagnostics(x)["dead_units"]
    assert dead[False] > 0.8 and dead[True] < 0.2, dead
