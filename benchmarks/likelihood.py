"""Importance-weighted log p(x) on MNIST test images: ours vs pythae's ``get_nll``.

Both run on the same weights (a trained run's VAE, ported into a pythae ``VAE`` with the
same 784-500-20 tanh layers; pythae's decoder ends in a sigmoid, ours in logits), with the
same K, in one process with the same torch threads. Measured: wall time per test image of
``iw_log_likelihood`` (fp32, then the opt-in bf16 decoder) and of pythae's ``get_nll``; from
it the projected time for the whole 10,000-image MNIST test set, the ratio, the decoder's
GFLOP/s (decoder matmuls only; pythae also runs its encoder on every sample), and the two
log-likelihoods compared image by image.

The comparison is paired: on each of the ``--n-pythae`` images both estimators start from
the same seed, so (pythae's ``get_nll`` with ``batch_size = K`` draws its K x Z normals in one
``randn``, as ours does for one image) they see the same latent samples and differ only by
float rounding. The reported difference is the mean of the per-image differences ± its
standard error (their spread / sqrt(n)); the estimates agree when the whole 3-SE interval
lies within 0.1 nats. With independent draws each K = 5000 estimate has a Monte-Carlo sd of
about 0.6 nats on MNIST (skewed: up to 1.5), so the difference of two 50-image means has an
sd of about 0.12 nats and a 0.1-nat check on it is a coin toss; should pythae ever draw
differently, the SE shows it and the check says "inconclusive" instead of passing or failing.

    python benchmarks/likelihood.py RUN [--k 5000] [--n 200] [--n-pythae 50]

RUN is a run folder of ``vae-mnist`` (e.g. from ``autoencoders reproduce vae-mnist``).
pythae is slow (a Python loop over images), so it is timed on ``--n-pythae`` images; both
numbers are per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from autoencoders.data.load import load_split
from autoencoders.evaluation.likelihood import iw_log_likelihood
from autoencoders.runs import Run

TEST_IMAGES = 10_000  # the MNIST test set


def decoder_flops_per_row(model) -> float:
    z, h = model.latent_dim, model.config.hidden
    return 2 * (z * h + h * 784)


def pythae_from_ours(model):
    from pythae.models import VAE as PVAE
    from pythae.models import VAEConfig as PVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Enc(BaseEncoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            mu, log_var = self.net(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Dec(BaseDecoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    cfg = PVAEConfig(input_dim=(1, 28, 28), latent_dim=model.latent_dim,
                     reconstruction_loss="bce")
    return PVAE(cfg, encoder=Enc(model.encoder), decoder=Dec(model.decoder)).eval()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--n", type=int, default=200, help="test images for ours")
    p.add_argument("--n-pythae", type=int, default=50, help="test images for pythae")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    run = Run.load(args.run)
    model = run.load_model()
    x = load_split(run.config, "test").x
    flops = decoder_flops_per_row(model) * args.k

    torch.manual_seed(0)
    t0 = time.perf_counter()
    ours = iw_log_likelihood(model, x[: args.n], n_samples=args.k)
    t_ours = (time.perf_counter() - t0) / args.n
    torch.manual_seed(0)
    t0 = time.perf_counter()
    ours_bf16 = iw_log_likelihood(model, x[: args.n], n_samples=args.k, precision="bf16")
    t_bf16 = (time.perf_counter() - t0) / args.n
    diff = (ours_bf16 - ours).abs()
    out = {"k": args.k, "threads": torch.get_num_threads(), "ours_s_per_image": t_ours,
           "ours_test_set_s": t_ours * TEST_IMAGES, "ours_gflops": flops / t_ours / 1e9,
           "ours_mean": float(ours.mean()), "bf16_s_per_image": t_bf16,
           "bf16_mean_diff": float((ours_bf16 - ours).mean()), "bf16_max_diff": float(diff.max())}
    print(f"ours:   {t_ours * 1e3:8.1f} ms/image  {flops / t_ours / 1e9:6.0f} GFLOP/s  "
          f"mean log p(x) over {args.n}: {ours.mean():.3f} ± {ours.std() / args.n**0.5:.3f}")
    print(f"        projected for the {TEST_IMAGES:,} test images: "
          f"{t_ours * TEST_IMAGES / 60:.1f} min ({torch.get_num_threads()} threads)")
    print(f"bf16:   {t_bf16 * 1e3:8.1f} ms/image  {flops / t_bf16 / 1e9:6.0f} GFLOP/s  "
          f"vs fp32 on the same draws: mean {out['bf16_mean_diff']:+.4f}, "
          f"max {out['bf16_max_diff']:.4f} nats")
    try:
        pmodel = pythae_from_ours(model)
    except ImportError:
        print("pythae is not installed here: `make bench` runs this in .venv-bench with it.")
        return out
    m = args.n_pythae
    theirs, ours_m, t_theirs = [], [], 0.0
    with torch.no_grad():
        for i in range(m):  # get_nll loops over images in Python anyway: one call per image
            torch.manual_seed(10_000 + i)
            t0 = time.perf_counter()
            theirs.append(pmodel.get_nll(x[i:i + 1], n_samples=args.k, batch_size=args.k))
            t_theirs += time.perf_counter() - t0
            torch.manual_seed(10_000 + i)  # the same draws for ours on the same image
            ours_m.append(float(iw_log_likelihood(model, x[i:i + 1], n_samples=args.k)[0]))
    t_theirs /= m
    theirs, ours_m = torch.tensor(theirs, dtype=torch.float64), torch.tensor(ours_m)
    d = theirs - ours_m  # paired, per image
    d_mean = float(d.mean())
    d_se = float(d.std() / m**0.5) if m > 1 else float("nan")
    if abs(d_mean) + 3 * d_se <= 0.1:
        verdict = "agree within 0.1 nats"
    elif abs(d_mean) > 3 * d_se and abs(d_mean) > 0.1:
        verdict = "DIFFER by more than 0.1 nats"
    else:
        verdict = "inconclusive (SE too large for a 0.1-nat check: raise --n-pythae)"
    out.update(pythae_s_per_image=t_theirs, pythae_mean=float(theirs.mean()),
               ours_mean_same_images=float(ours_m.mean()), diff_mean=d_mean, diff_se=d_se,
               diff_max=float(d.abs().max()), agreement=verdict, speedup=t_theirs / t_ours,
               speedup_bf16=t_theirs / t_bf16)
    print(f"pythae: {t_theirs * 1e3:8.1f} ms/image  {flops / t_theirs / 1e9:6.0f} GFLOP/s  "
          f"mean log p(x) over {m}: {theirs.mean():.3f} (ours on the same images and draws: "
          f"{ours_m.mean():.3f})")
    print(f"        pythae - ours, paired per image: {d_mean:+.6f} ± {d_se:.6f} nats "
          f"(max |.| {out['diff_max']:.5f}): {verdict}")
    print(f"speed-up: {t_theirs / t_ours:.2f}x (fp32), {t_theirs / t_bf16:.2f}x (bf16)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
