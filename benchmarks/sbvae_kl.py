"""The SB-VAE's KL term, forward + backward: the series summed every step vs its table.

``kumaraswamy_beta_kl`` needs E[log(1 - v)] for every stick: the paper's series, 50 terms
of lgamma pairs (digamma pairs backward) per stick, or ``ExpectedLog1mTable``'s bicubic
interpolation of it (``model.kl_method``, default "table"). For a batch of the MNIST
model's shape (100 x 49 sticks, a and b drawn log-normally inside the model's bounds) this
prints the time of one forward + backward of the summed KL for each, their ratio, the
summed KL and the largest error of its gradients against the
series in float64, and the table's build time. Then one
training step of ``sbvae-mnist`` (quick) with each method, in one process.

    python benchmarks/sbvae_kl.py [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from autoencoders.config import load_experiment
from autoencoders.models.sbvae import (
    ExpectedLog1mTable,
    expected_log1m_table,
    kumaraswamy_beta_kl,
)
from autoencoders.provenance import cpu_features, hardware
from autoencoders.registry import build_model
from autoencoders.train import make_optimizer


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}; "
          f"torch {torch.__version__}, {args.threads} thread(s)")

    t = time.perf_counter()
    ExpectedLog1mTable((0.01, 30.0), (0.01, 1e12), 50)
    build = time.perf_counter() - t
    table = expected_log1m_table(0.01, 30.0, 0.01, 1e12, 50)

    g = torch.Generator().manual_seed(0)
    a0 = torch.exp(torch.randn(100, 49, generator=g)).clamp(0.01, 30.0)
    b0 = torch.exp(2 * torch.randn(100, 49, generator=g) + 1).clamp(0.01, 1e12)
    out = {}
    for method in ("series", "table"):
        a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()

        def kl(a=a, b=b, method=method):
            log1m = table(a, b) if method == "table" else None
            value = kumaraswamy_beta_kl(a, b, 1.0, 5.0, 50, log1m).sum()
            a.grad = b.grad = None
            value.backward()
            return value

        out[method] = dict(seconds=timed(kl, args.repeats), value=kl().item(),
                           grad_a=a.grad.clone(), grad_b=b.grad.clone())
    s, tb = out["series"], out["table"]
    a, b = a0.double().requires_grad_(), b0.double().requires_grad_()  # the reference
    kumaraswamy_beta_kl(a, b, 1.0, 5.0, 50).sum().backward()

    def grad_error(r):  # largest gradient error vs float64, relative to the largest gradient
        return max(float((r[k].double() - ref.grad).abs().max() / ref.grad.abs().max())
                   for k, ref in (("grad_a", a), ("grad_b", b)))

    rel = {m: grad_error(out[m]) for m in out}
    print(f"KL of 100 x 49 sticks (float32), forward + backward: series "
          f"{s['seconds'] * 1e3:.2f} ms, table {tb['seconds'] * 1e3:.2f} ms "
          f"({s['seconds'] / tb['seconds']:.1f}x); summed KL {s['value']:.4f} vs "
          f"{tb['value']:.4f} nats; largest gradient error against the float64 series, "
          f"relative to the largest gradient: series {rel['series']:.1e}, table "
          f"{rel['table']:.1e}; table built in {build:.2f} s (once per process)")

    steps = {}
    for method in ("series", "table"):
        cfg = load_experiment("sbvae-mnist", "quick", [f'model.kl_method="{method}"'])
        torch.manual_seed(0)
        model = build_model(cfg.model, (1, 28, 28))
        opt = make_optimizer(model, cfg.train)
        x = (torch.rand(cfg.train.batch_size, 1, 28, 28, generator=g) < 0.3).float()

        def step(model=model, opt=opt, x=x):
            opt.zero_grad(set_to_none=True)
            model.loss(x).total.backward()
            opt.step()

        steps[method] = timed(step, args.repeats)
    print(f"sbvae-mnist training step (batch {cfg.train.batch_size}): series "
          f"{steps['series'] * 1e3:.2f} ms, table {steps['table'] * 1e3:.2f} ms "
          f"({steps['series'] / steps['table']:.2f}x)")
    return dict(threads=args.threads, kl_series_s=s["seconds"], kl_table_s=tb["seconds"],
                grad_error_series=rel["series"], grad_error_table=rel["table"],
                table_build_s=build, step_series_s=steps["series"],
                step_table_s=steps["table"])


if __name__ == "__main__":
    main()
