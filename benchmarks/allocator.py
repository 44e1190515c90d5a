"""What keeping freed memory in glibc's heap (``autoencoders.allocator``) does to a step.

For each model, two child processes train the experiment's model on synthetic data with
its optimiser (``model.loss`` + backward + step, batch as configured), interleaved
``--repeats`` times:

* ``ours``: ``import autoencoders`` as it is (mmap threshold 32 MiB, trimming off);
* ``glibc``: glibc's own behaviour, obtained by setting one of its tunables to its default
  value (``MALLOC_TOP_PAD_=131072``), which makes the library leave malloc alone.

Printed per row: milliseconds per step (median), minor page faults and kernel (system) CPU
time per step, and the ratio. The numbers a step computes are the same in both.

    python benchmarks/allocator.py [--repeats 3] [--steps 40] [--threads N]
    python benchmarks/allocator.py --quick        # tiny: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from autoencoders.allocator import user_choices
from autoencoders.devices import cpu_has_native_bf16
from autoencoders.provenance import cpu_features, hardware

# (label, experiment, precision)
ROWS = [
    ("VAE (`vae-mnist`), fp32", "vae-mnist", "fp32"),
    ("beta-VAE FC (`betavae-dsprites`), fp32", "betavae-dsprites", "fp32"),
    ("beta-VAE FC (`betavae-dsprites`), bf16", "betavae-dsprites", "bf16"),
    ("beta-VAE conv (`betavae-dsprites-capacity`), fp32", "betavae-dsprites-capacity", "fp32"),
]

CHILD = """
import json, resource, sys, time
import torch
import autoencoders
from autoencoders.allocator import malloc_setting
from autoencoders.config import load_experiment
from autoencoders.registry import build_model
from autoencoders.train import make_optimizer
exp, precision, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = load_experiment(exp, "full")
shape = (1, 64, 64) if "dsprites" in exp else (1, 28, 28)
model = build_model(cfg.model, shape)
opt = make_optimizer(model, cfg.train)
x = (torch.rand(cfg.train.batch_size, *shape) > 0.5).float()

def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model.loss(x).total
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

for _ in range(3):
    step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"setting": malloc_setting(), "ms": 1e3 * (t1 - t0) / steps,
                  "faults": (r1.ru_minflt - r0.ru_minflt) / steps,
                  "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / steps}))
"""


def child(exp: str, precision: str, steps: int, threads: int, glibc: bool) -> dict:
    chosen = user_choices(os.environ)
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    if glibc:
        env["MALLOC_TOP_PAD_"] = "131072"  # glibc's default value: the library keeps out
    out = subprocess.run([sys.executable, "-c", CHILD, exp, precision, str(steps),
                          str(threads)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default here")
    p.add_argument("--quick", action="store_true", help="1 repeat, 3 steps, one row")
    args = p.parse_args(argv)
    rows = ROWS[:1] if args.quick else ROWS
    if args.quick:
        args.repeats, args.steps = 1, 3
    threads = args.threads or torch.get_num_threads()
    if not cpu_has_native_bf16():
        rows = [r for r in rows if r[2] != "bf16"]
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}; "
          f"{threads} threads, {args.steps} steps per child, median of {args.repeats}")
    results, settings = {}, set()
    for label, exp, prec in rows:
        runs = {"ours": [], "glibc": []}
        for _ in range(args.repeats):
            for kind in runs:
                r = child(exp, prec, args.steps, threads, glibc=kind == "glibc")
                runs[kind].append(r)
                settings.add((kind, r["setting"]))
        results[label] = {k: {m: statistics.median(r[m] for r in v)
                              for m in ("ms", "faults", "sys_ms")} for k, v in runs.items()}
    head = ("| model, precision | glibc's default: ms / step, faults, kernel ms | "
            "ours: ms / step, faults, kernel ms | speed-up |")
    lines = [head, "|---|---|---|---|"]
    for label, r in results.items():
        g, o = r["glibc"], r["ours"]
        lines.append(f"| {label} | {g['ms']:.1f}, {g['faults']:,.0f}, {g['sys_ms']:.1f} | "
                     f"{o['ms']:.1f}, {o['faults']:,.0f}, {o['sys_ms']:.1f} | "
                     f"{g['ms'] / o['ms']:.2f}x |")
    table = "\n".join(lines)
    print(table)
    for kind, setting in sorted(settings):
        print(f"{kind}: malloc {setting}")
    return {"rows": results, "table": table, "threads": threads}


if __name__ == "__main__":
    main()
