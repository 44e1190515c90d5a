"""Does ``torch.compile`` speed up the Kingma & Welling VAE on this CPU?

1. Training step: 784-500-20 tanh MLPs, Bernoulli decoder, batch 100, Adam (lr 1e-3), one
   epoch of ``--n`` (60,000) random binary images, in one process, same thread count:

   * ``eager``: ``model.loss(x).total`` + backward + ``Adam.step`` (foreach, as the trainer);
   * ``eager, fused Adam``: the same with ``Adam(fused=True)`` (to tell apart what a compiled
     optimiser step gains from fusing the update alone);
   * ``compiled loss``: the same with ``torch.compile(model.loss)`` (forward and, through
     AOTAutograd, backward compiled by Inductor; the optimiser step stays eager);
   * ``compiled loss + step``: also the optimiser step compiled (``torch.compile`` of a
     function calling ``opt.step()``, as in PyTorch's "compiling the optimizer" recipe).

   Median of ``--repeats`` epochs each (interleaved), after the compile, which is timed
   separately: the first call's time minus one eager step.
2. Likelihood decoder pass (``--skip-likelihood`` to skip): the Bernoulli term of the
   importance-weighted log p(x), ``bernoulli_log_prob_linear(body(z), last, x)`` on
   K x B = 5000 x 10 latent samples (the 50,000 rows per pass of ``eval.iw_batch``), eager vs
   compiled, no grad; median of ``--repeats`` passes, and the largest difference in nats.

Inductor on the CPU needs a C++ compiler (``which g++ cc`` is printed); any failure of
``torch.compile`` is caught and printed, and the eager figures stand alone.

    python benchmarks/compile_trial.py [--repeats 3] [--n 60000]
    python benchmarks/compile_trial.py --quick     # tiny sizes: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from autoencoders.models.likelihoods import bernoulli_log_prob_linear
from autoencoders.models.vae import VAE, VAEConfig

D, H, Z, B = 784, 500, 20, 100


MODES = {"eager": "eager", "fused": "eager, fused Adam", "loss": "compiled loss",
         "loss+step": "compiled loss + step"}


def new_model(fused: bool = False) -> tuple[VAE, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=Z, hidden=H), (1, 28, 28))
    kw = {"fused": True} if fused else {"foreach": True}
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, **kw)


def make_step(model, opt, mode: str):
    """One training step ``step(xb)`` for a mode of :data:`MODES`."""
    loss_fn = model.loss if mode in ("eager", "fused") else torch.compile(model.loss)
    opt_step = opt.step if mode != "loss+step" else torch.compile(lambda: opt.step())

    def step(xb):
        loss = loss_fn(xb).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt_step()
        return loss
    return step


def epoch_seconds(step, x: torch.Tensor) -> float:
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(0, len(x), B):
        step(x[perm[i:i + B]])
    return time.perf_counter() - t0


def failure(e: BaseException) -> str:
    lines = [ln for ln in traceback.format_exception_only(type(e), e)[-1].splitlines() if ln]
    return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def train_trial(x: torch.Tensor, repeats: int) -> dict:
    steps, compile_s, errors = {}, {}, {}
    t_eager_step = None
    for mode in MODES:
        model, opt = new_model(fused=mode == "fused")
        try:
            step = make_step(model, opt, mode)
            t0 = time.perf_counter()
            step(x[:B])  # eager: warm-up; compiled: traces and compiles (fwd + bwd)
            first = time.perf_counter() - t0
            for i in range(1, 4):  # a few more warm-up steps (recompiles would show here)
                step(x[i * B:(i + 1) * B])
            if mode == "eager":
                t0 = time.perf_counter()
                step(x[:B])
                t_eager_step = time.perf_counter() - t0
            elif mode != "fused":
                compile_s[mode] = first - (t_eager_step or 0.0)
            steps[mode] = step
        except Exception as e:  # report honestly, keep going
            errors[mode] = failure(e)
    times: dict[str, list[float]] = {m: [] for m in steps}
    for _ in range(repeats):  # interleaved
        for mode, step in list(steps.items()):
            try:
                times[mode].append(epoch_seconds(step, x))
            except Exception as e:
                errors[mode] = failure(e)
                del steps[mode]
                times.pop(mode)
    rates = {m: len(x) / statistics.median(t) for m, t in times.items() if t}
    return {"samples_per_s": rates, "compile_s": compile_s, "errors": errors}


def likelihood_trial(repeats: int, k: int, b: int) -> dict:
    model, _ = new_model()
    model.eval()
    body, last = model.decoder[0][:-1], model.decoder[0][-1]
    x = torch.bernoulli(torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    z = torch.randn(k, b, Z, generator=torch.Generator().manual_seed(1))

    def decoder_pass(z, x):
        return bernoulli_log_prob_linear(body(z), last, x)

    out: dict = {"rows": k * b, "errors": {}}
    fns = {"eager": decoder_pass}
    with torch.no_grad():
        ref = decoder_pass(z, x)
        try:
            compiled = torch.compile(decoder_pass)
            t0 = time.perf_counter()
            got = compiled(z, x)
            out["compile_s"] = time.perf_counter() - t0
            out["max_abs_diff"] = float((got - ref).abs().max())
            fns["compiled"] = compiled
        except Exception as e:
            out["errors"]["compiled"] = failure(e)
        times: dict[str, list[float]] = {m: [] for m in fns}
        for fn in fns.values():
            fn(z, x)  # warm-up
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(z, x)
                times[name].append(time.perf_counter() - t0)
    out["ms_per_pass"] = {m: 1e3 * statistics.median(t) for m, t in times.items()}
    out["compile_s"] = out.get("compile_s", 0.0) - out["ms_per_pass"]["eager"] / 1e3
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=60000, help="training images per epoch")
    p.add_argument("--k", type=int, default=5000, help="importance samples per image")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--skip-likelihood", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.n, args.k = 1, 2000, 500
    args.n -= args.n % B  # whole batches only: a short last batch would recompile
    if args.threads:
        torch.set_num_threads(args.threads)
    # a fresh Inductor cache: the compile times are those of a first compile, not of a
    # cache hit from an earlier run (within this run, the loss graph compiled for
    # "compiled loss" is reused by "compiled loss + step")
    cache = tempfile.TemporaryDirectory(prefix="inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    compilers = {c: shutil.which(c) for c in ("g++", "cc")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; C++ compilers: "
          + ", ".join(f"{c} = {w or 'not found'}" for c, w in compilers.items()))
    x = torch.bernoulli(torch.rand(args.n, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    tr = train_trial(x, args.repeats)
    eager = tr["samples_per_s"].get("eager")
    names = MODES
    lines = ["| VAE training step (batch 100, Adam) | compile, s | samples/s | vs eager |",
             "|---|---|---|---|"]
    for mode, label in names.items():
        if mode in tr["errors"]:
            lines.append(f"| {label} | failed | | |")
            continue
        r = tr["samples_per_s"].get(mode)
        c = tr["compile_s"].get(mode)
        lines.append(f"| {label} | {f'{c:.1f}' if c is not None else ''} | "
                     f"{f'{r:,.0f}' if r else ''} | "
                     f"{f'{r / eager:.2f}x' if r and eager else ''} |")
    out = {"train": tr, "compilers": compilers, "n": args.n, "repeats": args.repeats,
           "threads": torch.get_num_threads()}
    if not args.skip_likelihood:
        ll = likelihood_trial(max(args.repeats, 3), args.k, 10)
        out["likelihood"] = ll
        e, c = ll["ms_per_pass"].get("eager"), ll["ms_per_pass"].get("compiled")
        lines.append(f"| log p(x) decoder pass, {ll['rows']:,} rows, no grad (ms per pass) | "
                     + (f"{ll['compile_s']:.1f} | eager {e:.1f}, compiled {c:.1f} | "
                        f"{e / c:.2f}x (max diff {ll['max_abs_diff']:.2g} nats) |" if c else
                        f"failed | eager {e:.1f} | |"))
    table = "\n".join(lines)
    print(f"one epoch of {args.n:,} random binary images, median of {args.repeats}")
    print(table)
    errors = {**{names[m]: msg for m, msg in tr["errors"].items()},
              **{f"likelihood {m}": msg for m, msg in out.get("likelihood", {})
                 .get("errors", {}).items()}}
    for what, msg in errors.items():
        print(f"torch.compile failed for {what}: {msg}")
    out["table"], out["errors"] = table, errors
    print("compile, s: the first call minus one eager step, in a fresh Inductor cache; "
          "'compiled loss + step' reuses the loss graph compiled just before it.")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    cache.cleanup()
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
