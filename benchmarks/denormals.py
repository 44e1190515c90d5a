"""What flushing denormals (``autoencoders.openmp.flush_denormals``) does to Adam's step.

The FC beta-VAE's parameters (``betavae-dsprites``: 14 M) get Adam (lr 5e-4, fused, as
``train.make_optimizer`` builds it) for ``--decay`` steps with gradients that are zero on
the input-layer columns of ``--dark`` of the pixels except in 0.2 % of the steps (pixels
that are black in nearly every image, as dSprites' background) and fixed random values
elsewhere. Their moment estimates decay geometrically (x0.9 per step for the first) into
the denormal range below 1.2e-38, and leave it again when a pixel is lit. Then
``--steps`` more steps are timed. Two child processes, one flushing denormals before its
first parallel operation (as training does) and one not; both print the fraction of Adam's
state that is denormal and the milliseconds per step.

    python benchmarks/denormals.py [--threads N] [--decay 1500] [--steps 20]
    python benchmarks/denormals.py --quick       # tiny: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from autoencoders.provenance import cpu_features, hardware

CHILD = """
import json, sys, time
import torch
from autoencoders.config import load_experiment
from autoencoders.openmp import flush_denormals
from autoencoders.registry import build_model
from autoencoders.train import make_optimizer
mode, threads, decay, steps, dark = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
flushed = flush_denormals() if mode == "flush" else False
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = load_experiment("betavae-dsprites", "full")
model = build_model(cfg.model, (1, 64, 64))
opt = make_optimizer(model, cfg.train)
params = [p for p in model.parameters()]
first = next(p for p in params if p.dim() == 2 and p.shape[1] == 64 * 64)
grads = [torch.randn_like(p) * 1e-3 for p in params]  # fixed: no sampling in the loop
g_first = grads[[i for i, p in enumerate(params) if p is first][0]]
is_dark = torch.rand(64 * 64) < dark

def step():
    # a dark pixel is lit in 0.2 % of the steps: its weights get a gradient now and then
    lit = (~is_dark | (torch.rand(64 * 64) < 0.002)).float()
    for p, g in zip(params, grads):
        p.grad = g
    first.grad = g_first * lit
    opt.step()

for _ in range(decay):
    step()
state = [t for s in opt.state.values() for k, t in s.items() if k != "step"]
tiny = torch.finfo(torch.float32).tiny
denormal = sum(((t != 0) & (t.abs() < tiny)).sum().item() for t in state) / sum(
    t.numel() for t in state)
t0 = time.perf_counter()
for _ in range(steps):
    step()
ms = 1e3 * (time.perf_counter() - t0) / steps
print(json.dumps({"flushed": flushed, "denormal": denormal, "ms": ms}))
"""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="0: torch's default here")
    p.add_argument("--decay", type=int, default=1500)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dark", type=float, default=0.5,
                   help="fraction of pixels whose input weights get no gradient")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.decay, args.steps = 5, 2
    threads = args.threads or torch.get_num_threads()
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}; {threads} threads")
    out = {}
    for mode in ("default", "flush"):
        res = subprocess.run([sys.executable, "-c", CHILD, mode, str(threads), str(args.decay),
                              str(args.steps), str(args.dark)],
                             capture_output=True, text=True, check=True)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    d, f = out["default"], out["flush"]
    table = "\n".join([
        "| Adam step, FC beta-VAE (14 M parameters) | denormal share of Adam's state | ms / step |",
        "|---|---|---|",
        f"| denormals kept (PyTorch's default) | {100 * d['denormal']:.1f} % | {d['ms']:.1f} |",
        f"| flushed (`flush_denormals`, as training does) | {100 * f['denormal']:.1f} % | "
        f"{f['ms']:.1f} |",
    ])
    print(table)
    print(f"speed-up {d['ms'] / f['ms']:.2f}x after {args.decay} steps with "
          f"{100 * args.dark:.0f} % dark pixels; flushing available: {f['flushed']}")
    return {"table": table, "threads": threads, **out}


if __name__ == "__main__":
    main()
