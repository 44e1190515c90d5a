"""Disentanglement metrics: Higgins et al. (beta-VAE), Kim & Mnih (FactorVAE), Chen et al. (MIG).

Every metric uses only the ground-truth-factor API (``factor_sizes``,
``sample_factors(n, generator)``, ``sample_observations_from_factors(factors, generator)``;
see :class:`autoencoders.data.dsprites.DSprites`) and a representation function
``represent(x) -> (N, latent_dim)`` (for a VAE: the posterior mean, :func:`representation`).
Each metric is a sampler (draws factors, renders, encodes) followed by a pure scorer on
arrays, so the scorers can be tested on hand-made codes. Codes are always
``(n_points, latent_dim)``; factors ``(n_points, n_factors)`` integer classes.

Protocol numbers are default arguments equal to the papers' values (via
google-research/disentanglement_lib's configs where the paper leaves them open).
Randomness is an explicit ``torch.Generator``; the votes are drawn from it alone, so they
do not depend on the model or on how it was trained.

Collapsed latent dimensions (near-constant codes, typical of a beta-VAE whose unused
latents match the prior, so their posterior mean is ~0):

* Higgins: a collapsed dimension gives a feature |z1 - z2| ~ 0 in every vote; it carries
  no information and the classifier gives it ~0 weight. Features are standardised with the
  training votes' mean and standard deviation before the classifier (a constant feature
  stays 0), so the score does not depend on the code's units: an untrained network whose
  codes vary by 1e-3 is scored on what its codes say, not on the classifier's L2 penalty.
* FactorVAE: dimensions whose standard deviation over the data is below
  ``prune_threshold`` (0.05) times the largest dimension's are dropped before the division
  by that standard deviation; if every dimension is constant the score is 0.
  disentanglement_lib prunes at an absolute 0.05, which for a posterior mean in prior
  units is the same cut, but drops every dimension of a representation on a smaller scale
  (an untrained network's, PCA's on another scale): the relative cut scores those too.
* MIG: a constant dimension falls into one histogram bin and has mutual information 0 with
  every factor. The division is by the factor's entropy, which is > 0 for every factor
  with more than one value (all of dSprites'); a factor with one value is skipped.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..data import DATASETS
from ..data.dsprites import DSprites
from ..devices import resolve_precision
from ..errors import UserError
from ..models import MODELS, build_model
from ..runs import atomic_write_text

Represent = Callable[[torch.Tensor], torch.Tensor]


def representation(model, batch: int | None = None, precision: str = "fp32",
                   streams: int | None = None) -> Represent:
    """The model's deterministic code (``model.features``: the posterior mean for a VAE)
    as a batched, gradient-free function ``(N, C, H, W) -> (N, latent_dim)`` on the CPU.

    ``batch``: images per forward pass; default :func:`encode_batch` (on a CPU, the largest
    batch whose widest activation fits in :data:`ACTIVATION_BYTES`). On a CPU a model with
    convolutions encodes through a channels-last copy of itself (oneDNN's fast layout for
    convolutions; its ReLUs in place, :func:`_relu_in_place`; the model itself is not
    changed). ``precision = "bf16"`` runs the encoder under ``torch.autocast(bfloat16)``
    (opt-in, ``eval.encode_precision``; ``"auto"``: bf16 where the device computes it
    natively, see :mod:`autoencoders.devices`); the codes are returned in float32 either way.

    ``streams``: on a CPU, the batches are shared among this many Python threads that each
    run PyTorch with one thread (default: ``torch.get_num_threads()``), instead of every
    batch using all threads: the batches are small, so one stream per core avoids the
    threads' synchronisation in each layer (dSprites conv encoder, 2 cores: see
    docs/BENCHMARKS.md). A row's code does not depend on which stream encoded it beyond
    float rounding."""
    device = next(model.parameters()).device
    if precision == "auto":
        precision = resolve_precision("auto", device, warn=False)
    encoder = model
    if device.type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        encoder = copy.deepcopy(model).to(memory_format=torch.channels_last)
        _relu_in_place(encoder)
    sizes: dict[tuple[int, ...], int] = {}  # image shape -> batch

    def encode(x: torch.Tensor, starts: list[int], step: int, threads: int | None):
        if threads is not None:  # a worker stream; no_grad and autocast are per thread
            torch.set_num_threads(threads)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                             enabled=precision == "bf16"):
            return [encoder.features(x[i:i + step].to(device)).float().cpu() for i in starts]

    def represent(x: torch.Tensor) -> torch.Tensor:
        was_training = encoder.training
        encoder.eval()
        step = batch or sizes.get(tuple(x.shape[1:]))
        if step is None:
            step = sizes[tuple(x.shape[1:])] = encode_batch(encoder, x[:1].to(device))
        starts = list(range(0, x.shape[0], step))
        threads = torch.get_num_threads()
        n = 1 if device.type != "cpu" else min(streams or threads, len(starts))
        try:
            if n <= 1:
                out = encode(x, starts, step, None)
            else:  # contiguous shares of the batches, one stream each
                shares = [starts[len(starts) * k // n:len(starts) * (k + 1) // n]
                          for k in range(n)]
                with ThreadPoolExecutor(n) as pool:
                    parts = list(pool.map(lambda s: encode(x, s, step, 1), shares))
                out = [z for part in parts for z in part]
        finally:
            torch.set_num_threads(threads)  # the workers set the process-wide count
            encoder.train(was_training)
        return torch.cat(out)

    return represent


def _relu_in_place(model: torch.nn.Module) -> None:
    """Make the ReLUs of ``model`` (an inference-only copy) that sit inside an
    ``nn.Sequential`` after its first module compute in place: their input is the previous
    module's fresh output, read by nothing else. Saves allocating a new activation per
    layer and batch (the Higgins metric of the dSprites conv net: 81-86 s -> 77 s)."""
    for seq in model.modules():
        if isinstance(seq, torch.nn.Sequential):
            for i, m in enumerate(seq):
                if i > 0 and isinstance(m, torch.nn.ReLU):
                    m.inplace = True


# On a CPU, :func:`representation` encodes in batches whose widest activation (a layer's
# output) stays below this many bytes: the conv encoder of betavae-dsprites-conv (32 x 32 x
# 32 floats per image after its first layer) runs 2-3x faster in batches of 64 than of 1024,
# while the FC networks (1200 units) keep batches of 1024, their fastest.
ACTIVATION_BYTES = 8 * 2**20


@torch.no_grad()
def encode_batch(model, x1: torch.Tensor, largest: int = 1024, smallest: int = 16) -> int:
    """Images per forward pass for ``model.features`` on inputs like ``x1`` ``(1, ...)``:
    ``largest`` on a GPU; on a CPU the largest power of two in [smallest, largest] whose
    widest activation (any module's output) fits in :data:`ACTIVATION_BYTES`."""
    if x1.device.type != "cpu":
        return largest
    widest = [1]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            widest.append(output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        model.features(x1)
    finally:
        for h in handles:
            h.remove()
    step = largest
    while step > smallest and step * max(widest) > ACTIVATION_BYTES:
        step //= 2
    return step


def encode_factors(ground_truth, represent: Represent, factors: torch.Tensor,
                   generator: torch.Generator | None = None, block: int = 4096,
                   codes: GridCodes | None = None) -> np.ndarray:
    """Codes of the observations of ``factors`` ``(N, n_factors)``, in blocks so that
    only ``block`` images exist at a time. Returns ``(N, latent_dim)`` float64.

    With ``codes`` (a :class:`GridCodes` of ``represent``) the codes are looked up in it,
    each distinct image encoded once."""
    if codes is not None:
        return codes.lookup(ground_truth.index_of(factors).numpy())
    out = []
    for i in range(0, factors.shape[0], block):
        x = ground_truth.sample_observations_from_factors(factors[i:i + block], generator)
        out.append(represent(x).double().numpy())
    return np.concatenate(out)


class GridCodes:
    """The codes of a ground truth's images by grid index, each image encoded once.

    The metrics draw factor vectors with replacement: at their defaults the Higgins votes
    draw 1.92 million images and FactorVAE's 0.97 million, out of dSprites' 737,280. The
    representation is deterministic (the posterior mean) and a dSprites image is a function
    of its factors (no observation noise), so every draw of an image has the same code:
    :meth:`encode` encodes the distinct indices not seen yet (sorted, in blocks of
    ``block``), and :meth:`lookup` gathers the codes of the draws. One table serves every
    metric of an evaluation (:func:`shared_codes`); the votes, and the random numbers they
    are drawn with, are those of encoding every draw.

    The scores equal those of encoding every draw when a row's code does not depend on the
    other rows of its batch (the tests check it on exact representations). PyTorch's CPU
    matmuls give the same bits for every batch of 16 rows or more at one thread; a row
    encoded in a smaller batch (the last block) may differ in its last bits.

    Args:
        ground_truth: ``factor_sizes``, ``index_of``, ``factors_of`` and
            ``sample_observations_from_factors`` without observation noise.
        represent: deterministic ``(N, C, H, W) -> (N, latent_dim)``.
    """

    def __init__(self, ground_truth, represent: Represent, block: int = 4096):
        self.ground_truth, self.represent, self.block = ground_truth, represent, block
        self.n_images = int(np.prod(ground_truth.factor_sizes))
        self.known = np.zeros(self.n_images, bool)
        self.table: np.ndarray | None = None  # (n_images, latent_dim), on first encode
        self.encoded = 0  # images encoded so far

    def encode(self, index: np.ndarray) -> None:
        """Encode the images of ``index`` (grid indices, any shape and order, repeats
        allowed) that are not in the table yet."""
        missing = np.unique(index)
        missing = missing[~self.known[missing]]
        for i in range(0, len(missing), self.block):
            rows = missing[i:i + self.block]
            factors = self.ground_truth.factors_of(torch.from_numpy(rows))
            z = self.represent(self.ground_truth.sample_observations_from_factors(factors))
            z = z.numpy()  # (rows, latent_dim), the representation's own dtype
            if self.table is None:
                self.table = np.empty((self.n_images, z.shape[1]), z.dtype)
            self.table[rows] = z
            self.known[rows] = True
            self.encoded += len(rows)

    def lookup(self, index: np.ndarray) -> np.ndarray:
        """Codes of the images of ``index`` ``(N,)``, encoding the missing ones first:
        ``(N, latent_dim)`` float64."""
        self.encode(index)
        return self.table[index].astype(np.float64)


# a table of codes for every image of the grid is kept below this size (latent_dim 10:
# 29 MB in float32); wider representations (raw pixels: 12 GB) are encoded per draw
GRID_CODES_MAX_BYTES = 2**30


def shared_codes(ground_truth, represent: Represent) -> GridCodes | None:
    """A :class:`GridCodes` for the metrics of one evaluation, or None (encode every draw)
    unless ``ground_truth`` is dSprites holding its whole grid in memory (the official
    file, or procedural dSprites' cached full grid: :func:`wants_full_grid`) and a table of
    its codes fits in :data:`GRID_CODES_MAX_BYTES`. Encodes one image to learn the code's
    width."""
    if not isinstance(ground_truth, DSprites) or ground_truth.images is None:
        return None
    codes = GridCodes(ground_truth, represent)
    codes.encode(np.zeros(1, np.int64))
    if codes.table.nbytes > GRID_CODES_MAX_BYTES:
        return None
    return codes


# ------------------------------------------------------------------ Higgins et al. 2017


def higgins_votes(ground_truth, represent: Represent, n_votes: int, batch_size: int,
                  generator: torch.Generator, exclude: np.ndarray | None = None,
                  codes: GridCodes | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampler of the beta-VAE metric: ``n_votes`` (feature, fixed factor) points.

    For each vote: draw the fixed factor k uniformly; draw ``batch_size`` pairs of factor
    vectors that agree on factor k and are independent otherwise; the feature is the mean
    over the pairs of |z1 - z2| with z the representation.

    Args:
        exclude: pair keys (see Returns) that must not be drawn, e.g. the training votes'
            pairs; a pair drawn with one of these keys is redrawn.
        codes: a :class:`GridCodes` of ``represent``: the distinct images of all the votes
            are encoded once, before the features (same features, fewer encodings).

    Returns:
        features ``(n_votes, latent_dim)``, labels ``(n_votes,)`` (the fixed factor), and
        pair keys ``(n_votes, batch_size)`` int64 = index1 * N + index2 (N images).
    """
    sizes = ground_truth.factor_sizes
    k = torch.randint(len(sizes), (n_votes,), generator=generator)
    f1 = ground_truth.sample_factors(n_votes * batch_size, generator)
    f2 = ground_truth.sample_factors(n_votes * batch_size, generator)
    f1, f2 = f1.view(n_votes, batch_size, -1), f2.view(n_votes, batch_size, -1)
    same = torch.nn.functional.one_hot(k, len(sizes)).bool()[:, None, :]  # (n, 1, F)
    f2 = torch.where(same, f1, f2)
    n_images = int(np.prod(sizes))
    keys = _pair_keys(ground_truth, f1, f2, n_images)
    if exclude is not None:
        for _ in range(100):  # collisions are rare (~n^2 / N^2); redraw until none
            clash = torch.from_numpy(np.isin(keys, exclude))
            if not bool(clash.any()):
                break
            m = int(clash.sum())
            g1 = ground_truth.sample_factors(m, generator)
            g2 = ground_truth.sample_factors(m, generator)
            g2 = torch.where(same.expand(-1, batch_size, -1)[clash], g1, g2)
            f1[clash], f2[clash] = g1, g2
            keys = _pair_keys(ground_truth, f1, f2, n_images)
        else:
            raise ValueError(f"Could not draw {n_votes} x {batch_size} pairs that avoid the "
                             f"{len(exclude)} excluded ones: the factor space "
                             f"{tuple(sizes)} is too small; draw fewer votes.")
    if codes is not None:
        codes.encode(np.stack([keys // n_images, keys % n_images]))
    features = []
    step = max(1, 4096 // batch_size)  # votes per block: only their codes are held
    for i in range(0, n_votes, step):
        z1 = encode_factors(ground_truth, represent, f1[i:i + step].reshape(-1, len(sizes)),
                            generator, codes=codes)
        z2 = encode_factors(ground_truth, represent, f2[i:i + step].reshape(-1, len(sizes)),
                            generator, codes=codes)
        diff = np.abs(z1 - z2).reshape(-1, batch_size, z1.shape[1])  # (votes, L, latent_dim)
        features.append(diff.mean(1))
    return np.concatenate(features), k.numpy(), keys


def _pair_keys(ground_truth, f1, f2, n_images: int) -> np.ndarray:
    flat = f1.shape[-1]
    i1 = ground_truth.index_of(f1.reshape(-1, flat)).numpy().astype(np.int64)
    i2 = ground_truth.index_of(f2.reshape(-1, flat)).numpy().astype(np.int64)
    return (i1 * n_images + i2).reshape(f1.shape[:2])


def score_beta_vae(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray,
                   eval_y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Scorer of the beta-VAE metric: fit a linear classifier (scikit-learn
    ``LogisticRegression``, default L2 C = 1, lbfgs, ``max_iter=1000``) on the training
    votes standardised with their own mean and standard deviation, report accuracy in % on
    both sets."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0)
    std[std == 0] = 1.0
    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit((train_x - mean) / std, train_y)
    return {"train_accuracy": 100.0 * float(clf.score((train_x - mean) / std, train_y)),
            "eval_accuracy": 100.0 * float(clf.score((eval_x - mean) / std, eval_y))}


def beta_vae_metric(ground_truth, represent: Represent, *, batch_size: int = 64,
                    num_train: int = 10000, num_eval: int = 5000,
                    generator: torch.Generator | None = None,
                    codes: GridCodes | None = None) -> dict[str, Any]:
    """The beta-VAE disentanglement metric (Higgins et al., ICLR 2017, section 3 and
    appendix A.4; https://openreview.net/forum?id=Sy2fzU9gl).

    Protocol:
      1. Draw a factor k uniformly from the factors.
      2. Draw L = ``batch_size`` (64) pairs of factor vectors sharing factor k's value
         (every other factor independent), render them, and encode them with the
         representation (for a VAE the posterior mean).
      3. The vote's feature is the mean over the L pairs of |z1 - z2|; its label is k.
      4. Repeat for ``num_train`` (10,000) training votes and ``num_eval`` (5,000)
         evaluation votes; no evaluation pair equals a training pair (redrawn if so).
      5. Train a linear classifier (logistic regression, see :func:`score_beta_vae`) on
         the training votes; the score is its accuracy on the evaluation votes, in %.

    Chance is 100 / n_factors % (20 % on dSprites without colour). The paper used a
    linear classifier trained with Adagrad; logistic regression is disentanglement_lib's
    choice (a stated deviation).

    ``codes`` (a :class:`GridCodes` of ``represent``, see :func:`shared_codes`) encodes each
    distinct image of the votes once; the votes and the score are the same.

    Returns:
        ``eval_accuracy`` and ``train_accuracy`` (%), plus the protocol parameters.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    _check_codes(codes, represent)
    tx, ty, tkeys = higgins_votes(ground_truth, represent, num_train, batch_size, generator,
                                  codes=codes)
    ex, ey, _ = higgins_votes(ground_truth, represent, num_eval, batch_size, generator,
                              exclude=np.unique(tkeys), codes=codes)
    out: dict[str, Any] = score_beta_vae(tx, ty, ex, ey)
    out.update(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    return out


# ------------------------------------------------------------------- Kim & Mnih 2018


def factor_vae_votes(ground_truth, represent: Represent, n_votes: int, batch_size: int,
                     scale: np.ndarray, active: np.ndarray, generator: torch.Generator,
                     codes: GridCodes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sampler of the FactorVAE metric: ``(argmin dimension, fixed factor)`` per vote.

    For each vote: draw a factor k uniformly and one value of it; draw ``batch_size``
    factor vectors with that value; divide their codes by ``scale`` (the global standard
    deviation per dimension) and take the active dimension of least variance. With
    ``codes`` (a :class:`GridCodes`) the distinct images of all the votes are encoded once.

    Returns:
        dims ``(n_votes,)`` (indices into the full code) and labels ``(n_votes,)``.
    """
    sizes = ground_truth.factor_sizes
    k = torch.randint(len(sizes), (n_votes,), generator=generator)
    f = ground_truth.sample_factors(n_votes * batch_size, generator).view(n_votes, batch_size, -1)
    fixed = ground_truth.sample_factors(n_votes, generator)  # one value per vote
    same = torch.nn.functional.one_hot(k, len(sizes)).bool()[:, None, :]
    f = torch.where(same, fixed[:, None, :], f)
    if codes is not None:
        codes.encode(ground_truth.index_of(f.reshape(-1, len(sizes))).numpy())
    dims = []
    step = max(1, 4096 // batch_size)  # votes per block: only their codes are held
    for i in range(0, n_votes, step):
        z = encode_factors(ground_truth, represent, f[i:i + step].reshape(-1, len(sizes)),
                           generator, codes=codes)
        z = z.reshape(-1, batch_size, z.shape[1]) / scale  # (votes, L, latent_dim)
        var = z.var(axis=1, ddof=1)[:, active]  # (votes, active dims)
        dims.append(np.flatnonzero(active)[var.argmin(1)])
    return np.concatenate(dims), k.numpy()


def score_factor_vae(train_dims: np.ndarray, train_y: np.ndarray, eval_dims: np.ndarray,
                     eval_y: np.ndarray, latent_dim: int, n_factors: int) -> dict[str, float]:
    """Scorer of the FactorVAE metric: the majority-vote classifier (each dimension
    predicts the factor it was most often the argmin for, ties to the lower factor),
    accuracy in % on the training and evaluation votes."""
    counts = np.zeros((latent_dim, n_factors), np.int64)
    np.add.at(counts, (train_dims, train_y), 1)
    predict = counts.argmax(1)  # (latent_dim,)
    return {"train_accuracy": 100.0 * float(np.mean(predict[train_dims] == train_y)),
            "eval_accuracy": 100.0 * float(np.mean(predict[eval_dims] == eval_y))}


def factor_vae_metric(ground_truth, represent: Represent, *, batch_size: int = 64,
                      num_train: int = 10000, num_eval: int = 5000,
                      num_variance_estimate: int = 10000, prune_threshold: float = 0.05,
                      generator: torch.Generator | None = None,
                      codes: GridCodes | None = None) -> dict[str, Any]:
    """The FactorVAE disentanglement metric (Kim & Mnih, ICML 2018, section 4;
    https://arxiv.org/abs/1802.05983).

    Protocol:
      1. Estimate each dimension's standard deviation s_d over ``num_variance_estimate``
         (10,000) random observations; dimensions with s_d < ``prune_threshold`` (0.05)
         times the largest s_d are collapsed and excluded (they would win every argmin).
      2. For each vote: draw a factor k uniformly and fix it to a random value; draw
         L = ``batch_size`` (64) observations with it, encode them, divide by s_d, and
         take the active dimension d with the smallest empirical variance. Vote: (d, k).
      3. ``num_train`` (10,000) training and ``num_eval`` (5,000) evaluation votes.
      4. The majority-vote classifier (:func:`score_factor_vae`); the score is its
         accuracy on the evaluation votes, in %. (Kim & Mnih report the accuracy on
         their votes; the train/eval split is disentanglement_lib's.)

    Chance is about 100 / n_factors %. If every dimension is collapsed the score is 0.
    ``codes`` (a :class:`GridCodes` of ``represent``) encodes each distinct image once; the
    votes and the score are the same.

    Returns:
        ``eval_accuracy``, ``train_accuracy`` (%), ``active_dims`` and the parameters.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n_factors = len(ground_truth.factor_sizes)
    _check_codes(codes, represent)
    factors = ground_truth.sample_factors(num_variance_estimate, generator)
    z = encode_factors(ground_truth, represent, factors, generator, codes=codes)
    scale = z.std(axis=0, ddof=1)
    active = (scale >= prune_threshold * scale.max()) & (scale > 0)
    params = dict(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                  prune_threshold=prune_threshold, active_dims=int(active.sum()))
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, **params}
    safe = np.where(active, scale, 1.0)  # never divides by a collapsed dimension's ~0
    td, ty = factor_vae_votes(ground_truth, represent, num_train, batch_size, safe, active,
                              generator, codes)
    ed, ey = factor_vae_votes(ground_truth, represent, num_eval, batch_size, safe, active,
                              generator, codes)
    return {**score_factor_vae(td, ty, ed, ey, z.shape[1], n_factors), **params}


# ---------------------------------------------------------------- Chen et al. 2018


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column into ``num_bins`` equal-width bins over its own range: ``(N, D)`` int,
    as ``np.digitize`` on ``np.histogram_bin_edges`` column by column (same edges, same
    bins), vectorised over columns. A constant column falls into a single bin."""
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.floating):
        codes = codes.astype(np.float64)
    lo, hi = codes.min(0), codes.max(0)  # edges in the codes' dtype, as numpy's
    flat = lo == hi  # histogram_bin_edges widens a constant column to [v - 0.5, v + 0.5]
    half = np.asarray(0.5, codes.dtype)
    lo, hi = np.where(flat, lo - half, lo), np.where(flat, hi + half, hi)
    inner = np.linspace(lo, hi, num_bins + 1, axis=1, dtype=codes.dtype)[:, 1:-1]
    out = np.empty(codes.shape, np.int64)
    step = max(1, (1 << 24) // max(1, codes.shape[0] * (num_bins - 1)))
    for d in range(0, codes.shape[1], step):  # bins[i-1] <= x < bins[i]: edges <= x
        block = codes[:, d:d + step, None] >= inner[None, d:d + step]
        out[:, d:d + step] = block.sum(-1)
    return out


def mutual_info(binned: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mutual information in nats between each column of ``binned`` ``(N, D)`` and
    ``labels`` ``(N,)``, both non-negative integers: the plug-in estimate of the joint
    histogram, as scikit-learn's ``mutual_info_score`` (same value up to rounding), for all
    columns in one ``bincount`` rather than one call per column (the pixels baseline has
    4,096 columns)."""
    n, d = binned.shape
    _, y = np.unique(labels, return_inverse=True)
    rows = int(binned.max(initial=0)) + 1
    cols = int(y.max(initial=0)) + 1
    cell = (binned.astype(np.int64) * cols + y.reshape(-1, 1)
            + np.arange(d, dtype=np.int64) * (rows * cols))
    joint = np.bincount(cell.ravel(), minlength=d * rows * cols).reshape(d, rows, cols)
    joint = joint.astype(np.float64)
    outer = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)  # a_i b_j, counts
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint / n * np.log(joint * n / outer), 0.0)
    return np.maximum(terms.sum((1, 2)), 0.0)


def score_mig(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict[str, Any]:
    """Scorer of MIG on arrays.

    Args:
        codes: ``(N, latent_dim)`` representations.
        factors: ``(N, n_factors)`` integer classes.
        num_bins: histogram bins per code dimension.

    Returns:
        ``mig`` (mean over factors of the normalised gap), ``mig_per_factor`` (list, None
        for a factor with one value), ``mutual_info`` ``(latent_dim, n_factors)`` nats and
        ``entropy`` (per factor, nats).
    """
    assert codes.shape[0] == factors.shape[0], "codes and factors must share the first axis"
    binned = discretize(codes, num_bins)
    n_dims, n_factors = codes.shape[1], factors.shape[1]
    mi = np.stack([mutual_info(binned, factors[:, k]) for k in range(n_factors)], 1)
    entropies = [float(mutual_info(factors[:, k:k + 1], factors[:, k])[0])
                 for k in range(n_factors)]
    gaps: list[float | None] = []
    for k, entropy in enumerate(entropies):
        if entropy <= 0:
            gaps.append(None)
            continue
        top = np.sort(mi[:, k])[::-1]
        second = top[1] if n_dims > 1 else 0.0
        gaps.append(float((top[0] - second) / entropy))
    valid = [g for g in gaps if g is not None]
    return {"mig": float(np.mean(valid)) if valid else 0.0, "mig_per_factor": gaps,
            "mutual_info": mi.tolist(), "entropy": entropies}


def mig(ground_truth, represent: Represent, *, num_points: int = 10000, num_bins: int = 20,
        generator: torch.Generator | None = None,
        codes: GridCodes | None = None) -> dict[str, Any]:
    """Mutual Information Gap (Chen et al., "Isolating Sources of Disentanglement in
    VAEs", NeurIPS 2018, section 4; https://arxiv.org/abs/1802.04942).

    Protocol:
      1. Draw ``num_points`` (10,000) factor vectors uniformly, render and encode them.
      2. Discretise every code dimension into ``num_bins`` (20) equal-width bins.
      3. I(z_d; v_k) for every dimension d and factor k (plug-in estimate, nats), and the
         factor entropies H(v_k) (also plug-in).
      4. MIG = mean over k of (largest - second largest I(z_d; v_k) over d) / H(v_k).

    Deviation: Chen et al. estimate I(z_d; v_k) from q(z|x) by sampling; the 20-bin
    histogram of the mean is disentanglement_lib's estimator. With 20 bins a factor of
    more than 20 values cannot reach a gap of 1 (orientation: at most log 20 / log 40 =
    0.81), so a perfect representation of dSprites scores about 0.9, not 1.
    ``codes`` (a :class:`GridCodes` of ``represent``) looks codes up instead of encoding.

    Returns:
        ``mig``, ``mig_per_factor``, ``mutual_info`` and the parameters.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    _check_codes(codes, represent)
    factors = ground_truth.sample_factors(num_points, generator)
    z = encode_factors(ground_truth, represent, factors, generator, codes=codes)
    out = score_mig(z, factors.numpy(), num_bins)
    out.update(num_points=num_points, num_bins=num_bins)
    return out


def _check_codes(codes: GridCodes | None, represent: Represent) -> None:
    if codes is not None and codes.represent is not represent:
        raise ValueError("codes is a GridCodes of another representation; build it with "
                         "GridCodes(ground_truth, represent) from the same represent, or "
                         "pass codes=None.")


# ------------------------------------------------------------------------- evaluators
# ``fn(run, model) -> dict`` for ``eval.metrics`` (autoencoders.registry.EVALUATORS).
# Every model of every run is scored on the same votes: the generator's seed is fixed.

EVAL_SEED = 2017


def factor_datasets() -> list[str]:
    """Names of the data sets with ground-truth factors (a ``ground_truth`` factor API)."""
    return [k for k, c in DATASETS.items() if hasattr(c, "ground_truth")]


def _ground_truth(run):
    d = run.config.data
    cls = DATASETS[d.name]
    if d.name not in factor_datasets():
        raise UserError(f"The disentanglement metrics need ground-truth factors, which "
                        f"data.name = {d.name!r} does not have; use one of "
                        f"{', '.join(factor_datasets())}.")
    e = run.config.eval
    return cls.ground_truth(d.data_dir, d.download,
                            full_grid=wants_full_grid(e.votes_batch, e.votes_train, e.votes_eval))


# the vote metrics switch to the cached full grid of procedural dSprites (737,280 images)
# when they would draw at least this many images
FULL_GRID_AFTER = 737_280


def wants_full_grid(votes_batch: int, votes_train: int, votes_eval: int) -> bool:
    """Whether the vote metrics draw at least :data:`FULL_GRID_AFTER` images (two per pair),
    past which drawing procedural dSprites' whole grid once (cached on disk) and looking
    images up is cheaper than drawing them."""
    return 2 * votes_batch * (votes_train + votes_eval) >= FULL_GRID_AFTER


def _all_metrics(run, represent: Represent, names=("beta_vae", "factor_vae", "mig"),
                 codes: GridCodes | None = None) -> dict[str, float]:
    """The metrics ``names`` of ``represent`` at the run's ``eval`` sizes, each from its own
    generator seeded with :data:`EVAL_SEED`. ``codes``: a :class:`GridCodes` of
    ``represent`` to share (default: :func:`shared_codes`, one table for these metrics)."""
    e = run.config.eval
    gt = codes.ground_truth if codes is not None else _ground_truth(run)
    codes = codes if codes is not None else shared_codes(gt, represent)
    votes = dict(batch_size=e.votes_batch, num_train=e.votes_train, num_eval=e.votes_eval)
    out = {}
    if "beta_vae" in names:
        r = beta_vae_metric(gt, represent, generator=torch.Generator().manual_seed(EVAL_SEED),
                            codes=codes, **votes)
        out["beta_vae_metric"] = r["eval_accuracy"]
        out["beta_vae_metric_train"] = r["train_accuracy"]
    if "factor_vae" in names:
        r = factor_vae_metric(gt, represent, num_variance_estimate=e.variance_points,
                              generator=torch.Generator().manual_seed(EVAL_SEED), codes=codes,
                              **votes)
        out["factor_vae_metric"] = r["eval_accuracy"]
        out["factor_vae_active_dims"] = r["active_dims"]
    if "mig" in names:
        r = mig(gt, represent, num_points=e.mig_points,
                generator=torch.Generator().manual_seed(EVAL_SEED), codes=codes)
        out["mig"] = r["mig"]
    return out


def beta_vae_evaluator(run, model) -> dict[str, Any]:
    """``test/beta_vae_metric`` (eval accuracy, %) and ``test/beta_vae_metric_train``, and
    ``encode_precision``: the precision the metrics encoded in (``eval.encode_precision``
    with ``"auto"`` resolved)."""
    represent, codes = _model_codes(run, model)
    r = _all_metrics(run, represent, ("beta_vae",), codes)
    return {**{f"test/{k}": v for k, v in r.items()},
            "encode_precision": _encode_precision(run, model)}


def factor_vae_evaluator(run, model) -> dict[str, float]:
    """``test/factor_vae_metric`` (eval accuracy, %) and ``test/factor_vae_active_dims``."""
    represent, codes = _model_codes(run, model)
    r = _all_metrics(run, represent, ("factor_vae",), codes)
    return {f"test/{k}": v for k, v in r.items()}


def mig_evaluator(run, model) -> dict[str, float]:
    """``test/mig`` (0..1)."""
    represent, codes = _model_codes(run, model)
    r = _all_metrics(run, represent, ("mig",), codes)
    return {f"test/{k}": v for k, v in r.items()}


def _encode_precision(run, model) -> str:
    """``eval.encode_precision`` on the model's device, ``"auto"`` resolved."""
    return resolve_precision(run.config.eval.encode_precision,
                             next(model.parameters()).device, warn=False)


def _represent(run, model) -> Represent:
    return representation(model, precision=run.config.eval.encode_precision)


# The last model's representation and table of codes (held until the next model's): the
# beta_vae_metric, factor_vae_metric and mig evaluators are three calls for the same
# weights, and share them.
_LAST_CODES: dict[str, Any] = {}


def _model_codes(run, model) -> tuple[Represent, GridCodes | None]:
    """``model``'s representation and a :class:`GridCodes` of it (or None, see
    :func:`shared_codes`), reused from the previous call when the run, its eval config and
    the model's weights (hashed) are the same."""
    key = (str(run.path), json.dumps(run.config.to_dict()["eval"], sort_keys=True,
                                     default=str), _weights_digest(model))
    last = _LAST_CODES.get("entry")
    if last is not None and last[0] == key and last[1] is model:
        return last[2], last[3]
    _LAST_CODES.clear()  # the previous table is freed before the next is built
    represent = _represent(run, model)
    codes = shared_codes(_ground_truth(run), represent)
    _LAST_CODES["entry"] = (key, model, represent, codes)
    return represent, codes


def _weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def baselines_evaluator(run, model) -> dict[str, float]:
    """The three metrics for the baselines of Higgins et al.'s Table 1 (``eval.baselines``):

    * ``pixels``: the raw pixels (4096 dimensions);
    * ``pca`` / ``ica``: scikit-learn PCA / FastICA (``random_state=0``) with as many
      components as the model has latents, fitted on ``eval.variance_points`` (10,000)
      images drawn uniformly;
    * ``untrained``: the model's architecture at its initial weights (``train.seed``).

    Keys: ``baseline/<name>/beta_vae_metric``, ``.../factor_vae_metric``, ``.../mig``.

    The baselines do not depend on the trained weights, so their numbers are cached in
    ``<run folder>/../.baselines/<key>.json``, keyed by a hash of everything they depend
    on (data and eval config, seed, latent size and, for ``untrained``, the network
    config without its loss weights, ``network_fields``): the children of a sweep share one
    computation. PCA and ICA get as many components as the model's code has dimensions.
    """
    cfg = run.config
    gt = _ground_truth(run)
    n_comp = model.latent_dim or _code_size(model, gt.image_shape)
    fit_x = None
    out: dict[str, float] = {}
    for name in cfg.eval.baselines:
        cache = _baseline_cache_path(run, name, n_comp)
        cached = _read_json(cache)
        if cached is not None:
            out.update({f"baseline/{name}/{k}": v for k, v in cached.items()})
            continue
        if name == "untrained":
            with torch.random.fork_rng():
                torch.manual_seed(cfg.train.seed)
                fresh = build_model(cfg.model, gt.image_shape)
            represent = representation(fresh, precision=cfg.eval.encode_precision)
        elif name == "pixels":
            def represent(x):
                return x.flatten(1)
        else:
            if fit_x is None:
                factors = gt.sample_factors(cfg.eval.variance_points,
                                            torch.Generator().manual_seed(EVAL_SEED + 1))
                fit_x = gt.sample_observations_from_factors(factors).flatten(1).numpy()
            represent = _sklearn_represent(name, n_comp, fit_x)
        scores = {k: v for k, v in _all_metrics(run, represent).items()
                  if k in ("beta_vae_metric", "factor_vae_metric", "mig")}
        out.update({f"baseline/{name}/{k}": v for k, v in scores.items()})
        _write_json(cache, scores)
    return out


@torch.no_grad()
def _code_size(model, image_shape: tuple[int, int, int]) -> int:
    """Width of ``model.features`` (for models without a ``latent_dim``)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    width = model.features(torch.zeros(1, *image_shape, device=device)).flatten(1).shape[1]
    model.train(was_training)
    return int(width)


def _baseline_cache_path(run, name: str, n_comp: int):
    d = run.config.to_dict()
    key: dict[str, Any] = {"baseline": name, "data": d["data"], "eval": d["eval"],
                           "seed": d["train"]["seed"], "latent_dim": n_comp, "version": 1}
    if name == "untrained":
        key["model"] = MODELS[run.config.model_name].network_fields(d["model"])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
    return run.path.parent / ".baselines" / f"{name}-{digest.hexdigest()[:16]}.json"


def _read_json(path) -> dict[str, float] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path, data: dict[str, float]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1))
    except OSError:
        pass  # a cache: failing to write it costs time, not results


def _sklearn_represent(name: str, n_components: int, fit_x: np.ndarray) -> Represent:
    """PCA, or FastICA on the PCA scores (many dSprites pixels are constant, which makes
    FastICA's own whitening of the raw pixels divide by zero)."""
    from sklearn.decomposition import PCA, FastICA
    from sklearn.pipeline import make_pipeline

    est = PCA(n_components=n_components, random_state=0)
    if name == "ica":
        est = make_pipeline(est, FastICA(random_state=0, max_iter=1000))
    est.fit(fit_x)

    def represent(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(est.transform(x.flatten(1).numpy()))

    return represent
