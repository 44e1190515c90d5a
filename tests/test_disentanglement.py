"""Disentanglement metrics against oracles: true factors, an even rotation, pure noise.

The ground truth here has dSprites' factor sizes but its "observations" are the factor
classes themselves (scaled to [0, 1]), so the representation functions below are exact
oracles and the tests run in seconds; one test runs a metric on rendered dSprites.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoencoders.data.dsprites import DSprites
from autoencoders.evaluation import disentanglement as dis

SMALL = dict(batch_size=32, num_train=600, num_eval=400)


class FactorsAsObservations:
    """A ground truth whose observation of factors ``f`` is ``f / (size - 1)``, ``(N, F)``."""

    def __init__(self, sizes=(3, 6, 40, 32, 32)):
        self.factor_sizes = tuple(sizes)
        self.bases = tuple(math.prod(sizes[i + 1:]) for i in range(len(sizes)))

    def sample_factors(self, n, generator):
        return torch.stack([torch.randint(s, (n,), generator=generator)
                            for s in self.factor_sizes], 1)

    def index_of(self, factors):
        return (factors * torch.tensor(self.bases)).sum(1)

    def sample_observations_from_factors(self, factors, generator=None):
        return factors.double() / (torch.tensor(self.factor_sizes) - 1).clamp(min=1)


def with_noise_dims(n_noise=3, seed=1):
    """Oracle: the factors, then ``n_noise`` dims of N(0, 0.3^2) noise."""
    gen = torch.Generator().manual_seed(seed)

    def represent(x):
        return torch.cat([x, 0.3 * torch.randn(x.shape[0], n_noise, generator=gen,
                                               dtype=x.dtype)], 1)
    return represent


def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / math.sqrt(n)


def rotated(represent, matrix):
    m = torch.from_numpy(matrix)

    def rep(x):
        z = represent(x)
        z = (z - z.mean(0)) / z.std(0)
        return z @ m
    return rep


def pure_noise(seed=2, dims=8):
    gen = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(x.shape[0], dims, generator=gen, dtype=torch.float64)


def run_all(represent, gt=None, seed=0):
    gt = gt or FactorsAsObservations()
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    return (dis.beta_vae_metric(gt, represent, generator=g(), **SMALL)["eval_accuracy"],
            dis.factor_vae_metric(gt, represent, generator=g(), **SMALL)["eval_accuracy"],
            dis.mig(gt, represent, num_points=4000, generator=g())["mig"])


def test_true_factors_score_near_perfect():
    higgins, factor_vae, mig = run_all(with_noise_dims())
    assert higgins >= 99.0
    assert factor_vae >= 99.0
    # with 20 bins, factors of 32 and 40 values cap the gap at log 20 / log 32, log 20 / log 40
    assert mig >= 0.85


def test_even_rotation_destroys_mig_only():
    # the 5 factors + 3 noise dims, each spread over all 8 dims with weights +-1/sqrt(8)
    represent = rotated(with_noise_dims(), hadamard(8))
    _, _, mig = run_all(represent)
    assert mig < 0.1
    # mild mixing keeps each factor dominant in one dim: the vote-based metrics stay high,
    # MIG drops below the unmixed code's
    mix = np.eye(8) + 0.25 * hadamard(8)
    higgins, factor_vae, mig_mixed = run_all(rotated(with_noise_dims(), mix))
    assert higgins >= 90.0 and factor_vae >= 90.0
    assert mig_mixed < run_all(with_noise_dims())[2] - 0.1


def test_random_noise_scores_near_chance():
    higgins, factor_vae, mig = run_all(pure_noise())
    chance = 100.0 / 5
    assert abs(higgins - chance) < 8.0
    assert abs(factor_vae - chance) < 8.0
    assert mig < 0.05


def test_collapsed_dims_do_not_divide_by_zero():
    gt = FactorsAsObservations()
    base = with_noise_dims()

    def represent(x):  # the oracle plus two constant dims
        z = base(x)
        return torch.cat([z, torch.zeros(z.shape[0], 2, dtype=z.dtype)], 1)

    fv = dis.factor_vae_metric(gt, represent, generator=torch.Generator().manual_seed(0),
                               **SMALL)
    assert fv["active_dims"] == 8 and fv["eval_accuracy"] >= 99.0
    m = dis.mig(gt, represent, num_points=2000)
    assert np.isfinite(m["mig"]) and m["mig"] >= 0.85
    dead = dis.factor_vae_metric(gt, lambda x: torch.zeros(x.shape[0], 4, dtype=x.dtype),
                                 **SMALL)
    assert dead["eval_accuracy"] == 0.0 and dead["active_dims"] == 0


def test_train_and_eval_votes_never_share_pairs():
    gt = FactorsAsObservations(sizes=(4, 4, 4))  # 64 images: collisions are certain
    gen = torch.Generator().manual_seed(0)
    rep = with_noise_dims()
    _, _, train_keys = dis.higgins_votes(gt, rep, 40, 8, gen)
    _, _, free_keys = dis.higgins_votes(gt, rep, 40, 8, gen)
    assert np.isin(free_keys, train_keys).any()  # without exclusion they would collide
    _, labels, eval_keys = dis.higgins_votes(gt, rep, 40, 8, gen, exclude=np.unique(train_keys))
    assert not np.isin(eval_keys, train_keys).any()
    # every redrawn pair still shares its vote's factor
    i1, i2 = eval_keys // 64, eval_keys % 64
    f1 = np.stack([(i1 // b) % s for b, s in zip(gt.bases, gt.factor_sizes, strict=True)], -1)
    f2 = np.stack([(i2 // b) % s for b, s in zip(gt.bases, gt.factor_sizes, strict=True)], -1)
    assert (np.take_along_axis(f1 == f2, labels[:, None, None], -1)).all()


def test_score_mig_on_hand_made_codes():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 4, size=(5000, 2))
    duplicated = np.concatenate([f, f[:, :1]], 1).astype(float)  # factor 0 in two dims
    out = dis.score_mig(duplicated, f, num_bins=4)
    assert out["mig_per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert out["mig_per_factor"][1] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_discretize_matches_numpy_column_by_column(dtype):
    rng = np.random.default_rng(2)
    codes = (rng.normal(size=(2000, 40)) * 5).astype(dtype)
    codes[:, 3] = 2  # constant
    codes[:, 4] = codes[:, 4] // 3  # ties on the edges
    ours = dis.discretize(codes, 20)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], 20)
        assert (ours[:, d] == np.digitize(codes[:, d], edges[1:-1])).all(), d


def test_mutual_info_matches_scikit_learn():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(1)
    labels = rng.integers(3, 9, size=3000)  # labels need not start at 0
    binned = rng.integers(0, 20, size=(3000, 6))
    binned[:, 0] = labels % 4  # dependent on the labels
    binned[:, 1] = 7  # constant: no information
    ours = dis.mutual_info(binned, labels)
    theirs = [mutual_info_score(labels, binned[:, d]) for d in range(6)]
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours[0] > 0.5 and ours[1] == 0.0


def test_metric_on_rendered_dsprites_with_a_factor_oracle():
    """End to end on real renders: a representation that reads position off the image
    (its centroid) is a perfect code for pos_x/pos_y only."""
    gt = DSprites()

    def centroid(x):
        m = x[:, 0]
        grid = torch.arange(64, dtype=torch.float32)
        mass = m.sum((1, 2))
        cx = (m.sum(1) * grid).sum(1) / mass
        cy = (m.sum(2) * grid).sum(1) / mass
        return torch.stack([cx, cy], 1)

    out = dis.mig(gt, centroid, num_points=1500, generator=torch.Generator().manual_seed(0))
    gaps = out["mig_per_factor"]
    assert gaps[3] > 0.6 and gaps[4] > 0.6  # pos_x, pos_y
    assert max(gaps[0], gaps[1], gaps[2]) < 0.1  # shape, scale, orientation


def test_bf16_representation_is_close_to_fp32():
    """eval.encode_precision = "bf16": same codes up to bfloat16 rounding, float32 out."""
    from autoencoders.evaluation.disentanglement import representation
    from autoencoders.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden=64, latent_dim=4), (1, 16, 16))
    x = (torch.rand(50, 1, 16, 16) > 0.5).float()
    a = representation(model)(x)
    b = representation(model, precision="bf16")(x)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert not torch.equal(a, b)  # really computed in bf16
    assert torch.allclose(a, b, atol=0.05 * float(a.abs().max()))


def test_representation_of_a_conv_model_batches_small_and_keeps_the_codes():
    """On a CPU a conv encoder runs channels-last in batches whose widest activation fits
    ACTIVATION_BYTES: same codes as model.features (to float rounding), the model itself
    unchanged; an MLP on the same images keeps batches of 1024."""
    from autoencoders.evaluation import disentanglement as D
    from autoencoders.models.betavae import BetaVAE, BetaVAEConfig

    torch.manual_seed(0)
    conv = BetaVAE(BetaVAEConfig(latent_dim=4, arch="conv", conv_channels=[32, 32, 64, 64],
                                 conv_fc=64), (1, 64, 64)).eval()
    mlp = BetaVAE(BetaVAEConfig(latent_dim=4, hidden=64), (1, 64, 64)).eval()
    x = (torch.rand(70, 1, 64, 64) > 0.7).float()
    x1 = x[:1].flatten(1)
    # widest conv activation: 32 x 32 x 32 floats = 128 KiB per image -> 64 per batch
    assert D.encode_batch(conv, x1) == D.ACTIVATION_BYTES // (32 * 32 * 32 * 4) == 64
    assert D.encode_batch(mlp, x1) == 1024  # widest: 64 units (the cap)
    layout = [p.stride() for p in conv.parameters()]
    with torch.no_grad():
        expected = conv.features(x.flatten(1))
    got = D.representation(conv)(x.flatten(1))
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert [p.stride() for p in conv.parameters()] == layout  # the model is not touched
    assert not any(m.inplace for m in conv.modules() if isinstance(m, torch.nn.ReLU))


def test_representation_in_streams_gives_the_same_codes_and_restores_the_threads():
    """streams = 3: the batches are shared among three one-thread workers; the codes are
    those of one stream (to float rounding), in order, in fp32 and bf16, and the process's
    thread count is what it was, also after an error in a worker."""
    from autoencoders.evaluation import disentanglement as D
    from autoencoders.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden=64, latent_dim=4), (1, 16, 16))
    x = (torch.rand(300, 256) > 0.5).float()  # 10 batches of 32 (the last one of 12)
    threads = torch.get_num_threads()
    for precision in ("fp32", "bf16"):
        one = D.representation(model, batch=32, precision=precision, streams=1)(x)
        three = D.representation(model, batch=32, precision=precision, streams=3)(x)
        assert three.shape == (300, 4) and three.dtype == torch.float32
        assert torch.allclose(three, one, atol=1e-6, rtol=1e-5)
        assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError):
        D.representation(model, batch=32, streams=3)(torch.rand(300, 17))  # wrong width
    assert torch.get_num_threads() == threads


def test_scores_do_not_depend_on_the_codes_units():
    """A representation's units must not decide its score (the untrained-network baseline
    has codes on a ~1e-3 scale): Higgins standardises its vote features, FactorVAE prunes
    relative to the largest dimension's spread."""
    base = with_noise_dims()
    tiny = lambda x: 1e-3 * base(x)  # noqa: E731
    higgins, factor_vae, _ = run_all(tiny)
    ref_higgins, ref_factor_vae, _ = run_all(base)
    assert higgins >= 99.0 and factor_vae >= 99.0
    assert abs(higgins - ref_higgins) < 1.0 and abs(factor_vae - ref_factor_vae) < 1.0
    noise = pure_noise()
    tiny_noise = lambda x: 1e-3 * noise(x)  # noqa: E731
    h, f, _ = run_all(tiny_noise)
    assert abs(h - 20.0) < 8.0 and abs(f - 20.0) < 8.0  # small units are not signal


def test_factor_vae_prunes_relative_to_the_largest_dimension():
    gt = FactorsAsObservations()
    base = with_noise_dims()

    def represent(x):  # the oracle (spread ~0.3) plus two dims at 1 % of it
        z = base(x)
        g = torch.Generator().manual_seed(5)
        return torch.cat([z, 0.003 * torch.randn(z.shape[0], 2, generator=g,
                                                 dtype=z.dtype)], 1)

    fv = dis.factor_vae_metric(gt, represent, generator=torch.Generator().manual_seed(0),
                               **SMALL)
    assert fv["active_dims"] == 8 and fv["eval_accuracy"] >= 99.0


class SmallGrid(FactorsAsObservations):
    """A full grid small enough to cover many times: (4, 5, 6, 7) = 840 images."""

    def __init__(self):
        super().__init__((4, 5, 6, 7))

    def factors_of(self, index):
        index = torch.as_tensor(index)
        return (index[:, None] // torch.tensor(self.bases)) % torch.tensor(self.factor_sizes)


def row_wise(x):
    """A deterministic representation whose rows do not depend on their batch (elementwise
    maps only): the factors, a smooth mix of two, and two pseudo-random dims."""
    return torch.cat([x, torch.sin(3 * x[:, :1] + x[:, 1:2]),
                      torch.sin(1e3 * (x @ torch.tensor([1.0, 2.0, 3.0, 5.0],
                                                        dtype=x.dtype))[:, None] * torch.tensor(
                          [1.0, 1.7], dtype=x.dtype))], 1)


def pseudo_random(x):
    """A deterministic code with no information: pseudo-random in the image (8 dims)."""
    key = x @ torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=x.dtype)
    return torch.sin(key[:, None] * torch.arange(1, 9, dtype=x.dtype) * 12.9898) * 437.58 % 1


def scores(gt, represent, codes=None):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    return (dis.beta_vae_metric(gt, represent, generator=g(), codes=codes, **SMALL),
            dis.factor_vae_metric(gt, represent, generator=g(), codes=codes, **SMALL),
            dis.mig(gt, represent, num_points=4000, generator=g(), codes=codes))


@pytest.mark.parametrize("represent", [row_wise, pseudo_random])
def test_grid_codes_give_the_scores_of_encoding_every_draw(represent):
    """The memoised path encodes each distinct image once (840 here, instead of 2 x 32 x
    1000 Higgins + 32 x 1000 + 600 FactorVAE + 4000 MIG draws) and gives the same
    scores to the last bit; the generator ends in the same state (same votes)."""
    gt = SmallGrid()
    calls = []

    def counted(x):
        calls.append(len(x))
        return represent(x)

    direct = scores(gt, represent)
    codes = dis.GridCodes(gt, counted)
    memo = scores(gt, counted, codes)
    assert memo == direct
    assert codes.encoded == sum(calls) == 840
    if represent is row_wise:  # the oracle scores as before: near perfect
        assert direct[0]["eval_accuracy"] >= 99.0 and direct[1]["eval_accuracy"] >= 99.0
    else:  # no information: chance
        assert abs(direct[0]["eval_accuracy"] - 25.0) < 8.0 and direct[2]["mig"] < 0.05
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    dis.higgins_votes(gt, represent, 50, 8, g1)
    dis.higgins_votes(gt, counted, 50, 8, g2, codes=dis.GridCodes(gt, counted))
    assert torch.equal(torch.randint(10**9, (4,), generator=g1),
                       torch.randint(10**9, (4,), generator=g2))


def test_grid_codes_belong_to_their_representation():
    gt = SmallGrid()
    with pytest.raises(ValueError, match="another representation"):
        dis.mig(gt, row_wise, num_points=100, codes=dis.GridCodes(gt, pseudo_random))


def test_shared_codes_only_for_a_full_grid_that_fits():
    """Procedural dSprites without its grid draws per vote; a grid is shared unless the
    table of codes is too large (raw pixels: 737,280 x 4096)."""
    assert dis.shared_codes(DSprites(), row_wise) is None
    assert dis.shared_codes(SmallGrid(), row_wise) is None  # not dSprites
    grid = np.broadcast_to(np.zeros((1, 64, 64), np.uint8), (737280, 64, 64))  # no memory
    gt = DSprites(grid)
    codes = dis.shared_codes(gt, lambda x: x.flatten(1)[:, :10])
    assert codes is not None and codes.table.shape == (737280, 10) and codes.encoded == 1
    assert dis.shared_codes(gt, lambda x: x.flatten(1)) is None


def test_the_three_evaluators_of_one_model_share_one_table(monkeypatch, tmp_path):
    """beta_vae_metric, factor_vae_metric and mig are three evaluator calls; with the same
    weights the second and third reuse the first's table, new weights get a new one."""
    import types

    from autoencoders.config import EvalConfig

    e = EvalConfig(votes_batch=8, votes_train=60, votes_eval=40, mig_points=300,
                   variance_points=300)
    config = types.SimpleNamespace(eval=e, to_dict=lambda: {"eval": vars(e)})
    run = types.SimpleNamespace(path=tmp_path, config=config)
    monkeypatch.setattr(dis, "_ground_truth", lambda run: SmallGrid())
    monkeypatch.setattr(dis, "shared_codes", lambda gt, rep: dis.GridCodes(gt, rep))
    model = torch.nn.Linear(4, 3).double()
    model.features = model.forward
    first = dis._model_codes(run, model)
    out = {**dis.beta_vae_evaluator(run, model), **dis.factor_vae_evaluator(run, model),
           **dis.mig_evaluator(run, model)}
    assert set(out) >= {"test/beta_vae_metric", "test/factor_vae_metric", "test/mig"}
    assert dis._model_codes(run, model)[1] is first[1] and first[1].encoded <= 840
    with torch.no_grad():
        model.weight.add_(1.0)
    assert dis._model_codes(run, model)[1] is not first[1]
