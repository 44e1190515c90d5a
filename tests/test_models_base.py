"""The model contract (models/base.py), checked over every registered model on tiny
synthetic data: a train step changes the weights, evaluation is deterministic, loss terms
are finite and named, save -> load round-trips bit-exactly, every declared capability
works, and every figure and evaluator that a shipped experiment asks of the model runs.
No file of ../shared/data is read."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from autoencoders import pipeline
from autoencoders.checks import build_dataclass
from autoencoders.config import from_dict, list_experiments, load_experiment
from autoencoders.errors import ConfigError
from autoencoders.models import MODELS, check_contract
from autoencoders.models.base import CAPABILITIES, Autoencoder
from autoencoders.registry import EVALUATORS, FIGURES, find_output, require

# small networks; a model not listed here is tested with its Config's defaults
TINY_MODEL = {
    "vae": {"latent_dim": 3, "hidden": 16},
    "betavae": {"latent_dim": 3, "hidden": 16, "arch": "mlp", "beta": 2.0},
    "dae": {"hidden": 16},
    "ksparse": {"hidden": 32, "k": 4, "k_start": 8},
    "sda": {"hidden": [16, 12], "noise": [0.2, 0.2], "pretrain_epochs": 1},
    "sbvae": {"truncation": 4, "hidden": 16},
}
SHAPE = (1, 28, 28)
# the disentanglement metrics need ground-truth factors: procedural dSprites (no files)
NEEDS_FACTORS = {"beta_vae_metric", "factor_vae_metric", "mig", "disentanglement_baselines"}


def tiny_model(name: str) -> Autoencoder:
    cls = MODELS[name]
    fields = {k: v for k, v in TINY_MODEL.get(name, {}).items()
              if k in {f.name for f in dataclasses.fields(cls.Config)}}
    torch.manual_seed(0)
    return cls(build_dataclass(cls.Config, fields, "model"), SHAPE)


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *SHAPE, generator=g) > 0.5).float(), torch.randint(0, 10, (n,),
                                                                              generator=g)


def loss_of(model: Autoencoder, x, y):
    return model.loss(x, y) if model.uses_labels else model.loss(x)


def experiments_of(model_name: str):
    """The shipped experiments (each sweep value on its own) that train ``model_name``."""
    out = []
    for name in list_experiments():
        cfg = load_experiment(name, "quick")
        children = [c for _, c, _ in pipeline.sweep_children(cfg)] if cfg.sweep else [cfg]
        out += [c for c in children if c.model_name == model_name]
    return out


ALL = sorted(MODELS)


@pytest.mark.parametrize("name", ALL)
def test_contract(name):
    cls = MODELS[name]
    check_contract(cls)  # every declared capability implemented, and only those
    model = tiny_model(name)
    x, y = batch()

    # loss: a finite scalar; finite terms, each named in loss_terms
    out = loss_of(model, x, y)
    assert out.total.shape == () and torch.isfinite(out.total)
    assert out.terms and set(out.terms) <= set(cls.loss_terms), (set(out.terms),
                                                                  cls.loss_terms)
    assert all(torch.isfinite(v) and v.shape == () for v in out.terms.values())

    # a train step changes the weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.zero_grad()
    loss_of(model, x, y).total.backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())

    # evaluation is deterministic: codes and outputs without a seed, the loss with one
    model.eval()
    assert torch.equal(model.features(x), model.features(x))
    assert torch.equal(model(x), model(x)) and model(x).shape == x.shape
    assert torch.equal(model(x), model.reconstruct(x))
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        losses.append(loss_of(model, x, y).total)
    assert torch.equal(*losses)


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trips_bit_exactly(name, tmp_path):
    """A checkpoint is the config (JSON) plus the state_dict (safetensors)."""
    model = tiny_model(name)
    x, y = batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_of(model, x, y).total.backward()
    opt.step()  # move off the initial weights
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    (tmp_path / "c.json").write_text(json.dumps(dataclasses.asdict(model.config)))
    cls = MODELS[name]
    config = build_dataclass(cls.Config, json.loads((tmp_path / "c.json").read_text()),
                             "model")
    assert config == model.config
    again = cls(config, SHAPE)
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    model.eval(), again.eval()
    assert torch.equal(model(x), again(x))
    assert torch.equal(model.features(x), again.features(x))


@pytest.mark.parametrize("name", ALL)
def test_declared_capabilities_work_and_missing_ones_say_so(name):
    model = tiny_model(name).eval()
    x, y = batch(8)
    caps = model.capabilities
    z = model.features(x)
    assert z.ndim == 2 and z.shape[0] == 8
    if "generative" in caps:
        assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, *SHAPE)
        assert model.sample_prior(3).shape == (3, model.latent_dim)
        assert model.sample_posterior(x, torch.Generator().manual_seed(0)).shape == z.shape
        lw = model.log_importance_weights(x, 2)
        assert lw.shape == (2, 8) and torch.isfinite(lw).all()
    if "decode_mean" in caps:
        mean = model.decode_mean(z)
        assert mean.shape == x.shape and 0 <= mean.min() and mean.max() <= 1
    else:
        with pytest.raises(ConfigError, match="decode_mean"):
            model.decode_mean(z)
    if "kl_per_dim" in caps:
        kl = model.kl_per_dim(x)
        assert kl.shape == (model.latent_dim,) and (kl >= 0).all()
    else:
        with pytest.raises(ConfigError, match="kl_per_dim"):
            model.kl_per_dim(x)
    diag = model.diagnostics(x)
    assert bool(diag) == ("diagnostics" in caps)
    assert all(isinstance(v, float) for v in diag.values())
    w = model.filters()
    assert (w is not None) == ("filters" in caps)
    if w is not None:
        assert w.ndim == 4 and tuple(w.shape[1:]) == SHAPE
    if "corrupt" in caps:
        a = model.corrupt(x, torch.Generator().manual_seed(0))
        assert a.shape == x.shape
        assert torch.equal(a, model.corrupt(x, torch.Generator().manual_seed(0)))
    else:
        with pytest.raises(ConfigError, match="corrupt"):
            model.corrupt(x)
    if "stick_weights" in caps:
        torch.testing.assert_close(z.sum(1), torch.ones(8))
    if "feature_alpha" in caps:
        nonzero = [int((model.features(x, alpha=a) != 0).sum(1).max()) for a in (1.0, 2.0)]
        assert nonzero[0] < nonzero[1]
    stages = type(model).stages(model.config)
    assert stages and all(isinstance(label, str) and isinstance(o, dict)
                          for label, o in stages)
    assert (len(stages) > 1) == ("stages" in caps)
    assert isinstance(model.uses_labels, bool)


def end_to_end_cases():
    """(model, experiments) pairs: a model's shipped experiments split by the data they
    need (dSprites' ground-truth factors for the disentanglement metrics, labels else)."""
    cases = []
    for name in ALL:
        exps = experiments_of(name)
        factors = [c for c in exps if NEEDS_FACTORS & set(c.eval.metrics)]
        rest = [c for c in exps if c not in factors]
        cases += [pytest.param(name, group, id=f"{name}-{kind}")
                  for kind, group in (("factors", factors), ("labels", rest)) if group]
    return cases


@pytest.mark.parametrize(("name", "exps"), end_to_end_cases())
def test_every_figure_and_evaluator_of_its_experiments_runs(name, exps, tmp_path,
                                                              request):
    """Train the model tiny (with ``ae.train``, so in its stages), then draw every figure
    and run every evaluator a shipped experiment asks of it; every number evaluation
    writes is described by the registry."""
    figures = list(dict.fromkeys(f for c in exps for f in c.eval.figures))
    metrics = list(dict.fromkeys(m for c in exps for m in c.eval.metrics))
    model = tiny_model(name)
    for c in exps:  # the capability check plot/evaluate make, per experiment
        for f in c.eval.figures:
            require(model, c.name, "figure", f, FIGURES[f].requires)
        for m in c.eval.metrics:
            require(model, c.name, "evaluator", m, EVALUATORS[m].requires)

    raw = exps[0].to_dict()
    raw.pop("sweep", None)
    raw["model"] = {"name": name, **TINY_MODEL.get(name, {})}
    factors = bool(NEEDS_FACTORS & set(metrics))
    raw["data"] = ({"name": "dsprites-generated", "size": 300, "valid_size": 50,
                    "test_size": 50} if factors else
                   {"name": "mnist", "valid_size": 64, "binarize": "dynamic"})
    raw["train"].update(epochs=1, batch_size=32, threads=1, early_stopping=0, init_from="")
    knn_codes = sorted({k for c in exps for k in c.eval.knn_codes})
    alphas = sorted({a for c in exps for a in c.eval.feature_alphas})
    raw["eval"].update(figures=figures, metrics=metrics, iw_samples=4, test_subset=16,
                       knn_k=[1, 3], knn_codes=knn_codes, feature_alphas=alphas,
                       logreg_C=[1.0], votes_batch=2, votes_train=10, votes_eval=6,
                       mig_points=60, variance_points=60, checkpoint="last",
                       baselines=["pca", "untrained"])  # pixels: MIG over 4096 dims, slow
    cfg = from_dict(raw)
    if not factors:
        request.getfixturevalue("synthetic_mnist")  # every split is random 28x28 images

    run = pipeline.train(cfg, runs_dir=str(tmp_path), progress=False, log_epochs=False)
    ev = pipeline.evaluate(run, progress=False)
    for key, value in ev.items():
        if key.startswith(("test/", "valid/", "baseline/")):
            assert find_output(key, MODELS[name]) is not None, f"{key} is not described"
            assert value == value, key  # not NaN
    written = pipeline.plot(run)
    assert written and all(p.is_file() for p in written)
    assert {p.stem for p in written} <= set(figures)
    stages = MODELS[name].stages(cfg.model)
    for label, _ in stages[:-1]:  # ae.train trains every stage, as the CLI does
        assert (run.path / label / "metrics.jsonl").is_file(), label
    assert len(run.metrics()) == 1


def test_every_capability_is_declared_by_some_model_or_documented():
    declared = set().union(*(cls.capabilities for cls in MODELS.values()))
    assert declared <= set(CAPABILITIES)
    required = set().union(*(f.requires for f in FIGURES.values()),
                           *(e.requires for e in EVALUATORS.values()))
    assert required <= set(CAPABILITIES)
