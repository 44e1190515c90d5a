"""The registry: figures and evaluators name the model capabilities they need, a missing
one is an error naming experiment, figure and capability; outputs describe themselves.
Also: removing a capability from one model makes the contract checks fail by name."""

from __future__ import annotations

import pytest
import torch

from autoencoders import pipeline
from autoencoders.config import load_experiment
from autoencoders.errors import ConfigError
from autoencoders.models import MODELS, check_contract
from autoencoders.models.vae import VAE
from autoencoders.registry import EVALUATORS, FIGURES, Output, find_output, require, resolve
from autoencoders.report import table_keys
from autoencoders.runs import Run


def test_every_registered_target_resolves_to_a_function():
    for entry in [*FIGURES.values(), *EVALUATORS.values()]:
        assert callable(resolve(entry.target)), entry.target


def test_asking_a_model_for_a_figure_it_cannot_draw_names_experiment_figure_capability(
        tmp_path, monkeypatch):
    cfg = load_experiment("vae-mnist", "quick", ["eval.figures=[\"filters\", \"curves\"]",
                                                  "model.hidden=8", "model.latent_dim=2"])
    run = Run.create(cfg, tmp_path)
    model = MODELS["vae"](cfg.model, (1, 28, 28))
    monkeypatch.setattr(run, "load_model", lambda which="best": model)
    with pytest.raises(ConfigError) as e:
        pipeline.plot(run)
    msg = str(e.value)
    assert "'vae-mnist'" in msg and "'filters'" in msg and "capability 'filters'" in msg
    assert not (run.path / "figures" / "curves.png").exists()  # checked before drawing


def test_asking_an_evaluator_for_a_missing_capability_names_it(tmp_path, monkeypatch):
    cfg = load_experiment("dae-filters", "quick", ["eval.metrics=[\"knn\"]",
                                                    "eval.knn_codes=[\"sample\"]"])
    model = MODELS["dae"](cfg.model, (1, 28, 28))
    with pytest.raises(ConfigError, match="capability 'generative'"):
        resolve(EVALUATORS["knn"].target)(Run.create(cfg, tmp_path), model)
    cfg = load_experiment("vae-mnist", "quick", ["eval.metrics=[\"logreg\"]",
                                                  "eval.feature_alphas=[2.0]"])
    with pytest.raises(ConfigError, match="'feature_alpha'.*'vae'"):
        resolve(EVALUATORS["logreg"].target)(Run.create(cfg, tmp_path),
                                             MODELS["vae"](cfg.model, (1, 28, 28)))


def test_renaming_a_capability_method_fails_the_contract_by_name(monkeypatch):
    check_contract(VAE)
    monkeypatch.delattr(VAE, "kl_per_dim")  # as if renamed: the base default is back
    with pytest.raises(ConfigError, match="VAE declares the capability 'kl_per_dim' but "
                                          r"does not implement kl_per_dim\(\)"):
        check_contract(VAE)
    with pytest.raises(ConfigError, match="BetaVAE declares the capability 'kl_per_dim'"):
        check_contract(MODELS["betavae"])  # inherits the loss of it
    model = VAE(VAE.Config(latent_dim=2, hidden=8), (1, 28, 28))
    with pytest.raises(ConfigError, match="kl_per_dim"):
        model.kl_per_dim(torch.zeros(2, 1, 28, 28))


def test_undeclaring_a_capability_fails_its_experiments_by_name(monkeypatch):
    """The other half of a rename: a model that no longer declares ``kl_per_dim`` cannot
    draw the traversals its experiments ask for, and says so (it used to vanish)."""
    betavae = MODELS["betavae"]
    monkeypatch.setattr(betavae, "capabilities", betavae.capabilities - {"kl_per_dim"})
    monkeypatch.delattr(VAE, "kl_per_dim")
    monkeypatch.setattr(VAE, "capabilities", VAE.capabilities - {"kl_per_dim"})
    check_contract(betavae)  # consistent again: neither declared nor implemented
    cfg = load_experiment("betavae-dsprites-capacity", "quick")
    model = betavae(cfg.model, (1, 64, 64))
    with pytest.raises(ConfigError, match=r"'betavae-dsprites-capacity'.*figure "
                                          r"'traversals'.*capability 'kl_per_dim'"):
        for name in cfg.eval.figures:
            require(model, cfg.name, "figure", name, FIGURES[name].requires)


def test_implementing_without_declaring_is_caught(monkeypatch):
    dae = MODELS["dae"]
    monkeypatch.setattr(dae, "capabilities", dae.capabilities - {"corrupt"})
    with pytest.raises(ConfigError, match="does not declare the capability 'corrupt'"):
        check_contract(dae)


def test_outputs_describe_themselves():
    assert find_output("test/knn_error_sample_k5")[1] == \
        "test error of 5-NN on posterior samples, %"
    assert find_output("baseline/pca/mig")[1] == "pca: MIG, 0-1"
    assert find_output("test/rec", MODELS["vae"])[1].startswith("test reconstruction term")
    assert find_output("test/error", MODELS["sda"])[1] == "test classification error, %"
    assert find_output("test/nothing") is None
    out = Output("a/{x}_b", "the {x}", "%", True)
    assert out.match("a/q_b") == {"x": "q"} and out.match("a/q/r_b") is None


def test_report_tables_order_and_label_keys_without_a_table_of_their_own():
    ev = {"test/loss": 1.0, "test/rec": 0.5, "test/kl": 0.5, "n_test": 3, "test/elbo": -1.0,
          "test/knn_error_k3": 4.0, "test/knn_error_k10": 3.0, "knn_train_examples": 9,
          "test/log_px": -0.9}
    keys, labels = table_keys([MODELS["vae"]], [ev], [{"test/other": 1.0}])
    assert keys == ["test/elbo", "test/log_px", "test/loss", "test/rec", "test/kl",
                    "test/knn_error_k3", "test/knn_error_k10", "test/other"]
    assert labels["test/knn_error_k10"] == \
        "test error of 10-NN on the codes (posterior means), %"


def test_reproduce_checks_capabilities_before_training(tmp_path):
    cfg = load_experiment("vae-mnist", "quick", ["eval.figures=[\"filters\"]"])
    with pytest.raises(ConfigError, match="'vae-mnist'.*figure 'filters'.*capability "
                                          "'filters'"):
        pipeline.reproduce(cfg, runs_dir=str(tmp_path), progress=False)
    assert not list(tmp_path.iterdir())  # nothing trained, no run folder


def test_a_sweep_over_models_leaves_out_figures_one_model_cannot_draw():
    cfg = load_experiment("sbvae-mnist", "quick")
    plan = {c.model_name: (c, skipped) for _, c, skipped in pipeline.sweep_children(cfg)}
    vae, skipped = plan["vae"]
    assert skipped == [("sticks", ["stick_weights"])]
    assert "sticks" not in vae.eval.figures and "samples" in vae.eval.figures
    sbvae, skipped = plan["sbvae"]
    assert skipped == [] and sbvae.eval.figures == cfg.eval.figures
