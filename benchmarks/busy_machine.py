"""Training throughput on a busy machine: how thread count and OpenMP's wait policy behave
when another process keeps one core busy.

For each setting (``OMP_WAIT_POLICY`` = ACTIVE / PASSIVE, ``GOMP_SPINCOUNT``, torch threads
= all cores / one) a fresh Python process (the policy is read when OpenMP starts, i.e. when
torch is imported) times Adam steps of the
Kingma & Welling MNIST VAE (784-500-20 tanh, batch 100, random binary images: the speed
does not depend on the data) twice: alone, and beside ``--competitors`` processes that spin
on the CPU. Prints the CPU's features, samples/s for each case and the busy / idle ratio;
``main()`` also returns them with a Markdown table (``benchmarks/all.py --busy``).

    python benchmarks/busy_machine.py [--seconds 8] [--competitors 1]

The row "library default" imports ``autoencoders`` first with no OpenMP variable set (what
a user of the command line gets); "OpenMP default" is plain torch.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

from autoencoders.provenance import cpu_features, hardware

CHILD = r"""
import json, os, sys, time
if sys.argv[3] == "1":
    import autoencoders  # noqa: F401 - its import sets the library's OpenMP default
import torch
from autoencoders.models.vae import VAE, VAEConfig
threads = int(sys.argv[1]); seconds = float(sys.argv[2])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
model = VAE(VAEConfig(latent_dim=20, hidden=500, activation="tanh", likelihood="bernoulli"),
            (1, 28, 28))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = (torch.rand(6000, 1, 28, 28) < 0.3).float()
def step(i):
    batch = x[(i * 100) % 6000:(i * 100) % 6000 + 100]
    opt.zero_grad(set_to_none=True)
    loss = model.loss(batch).total
    loss.backward()
    opt.step()
for i in range(20):
    step(i)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    step(n); n += 1
print(json.dumps({"samples_per_s": n * 100 / (time.perf_counter() - t0),
                  "threads": torch.get_num_threads()}))
"""


def spin() -> None:
    while True:
        pass


def measure(env_vars: dict[str, str], threads: int, seconds: float, library: bool) -> float:
    env = dict(os.environ)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    env.update(env_vars)
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(seconds),
                          "1" if library else "0"], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--competitors", type=int, default=1)
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}")
    settings = [  # (name, environment, torch threads (0: torch's default), import ours)
        ("OpenMP default", {}, 0, False),
        ("library default", {}, 0, True),
        ("ACTIVE", {"OMP_WAIT_POLICY": "ACTIVE"}, cores, False),
        ("PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, cores, False),
        ("GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}, cores, False),
        ("GOMP_SPINCOUNT=100000", {"GOMP_SPINCOUNT": "100000"}, cores, False),
        ("ACTIVE", {"OMP_WAIT_POLICY": "ACTIVE"}, 1, False),
        ("PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, 1, False),
    ]
    print(f"{'setting':22s} {'threads':>7s} {'idle':>10s} {'busy':>10s} {'ratio':>6s}")
    rows = []
    for name, env_vars, threads, library in settings:
        idle = measure(env_vars, threads, args.seconds, library)
        procs = [mp.Process(target=spin, daemon=True) for _ in range(args.competitors)]
        for proc in procs:
            proc.start()
        time.sleep(0.5)
        try:
            busy = measure(env_vars, threads, args.seconds, library)
        finally:
            for proc in procs:
                proc.terminate()
                proc.join()
        shown = threads or "default"
        print(f"{name:22s} {shown!s:>7s} {idle:10,.0f} {busy:10,.0f} {busy / idle:6.2f}",
              flush=True)
        rows.append({"setting": name, "threads": shown, "idle": idle, "busy": busy})
    lines = ["| setting | threads | alone, samples/s | beside "
             f"{args.competitors} spinning process(es), samples/s | busy / alone |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['threads']} | {r['idle']:,.0f} | {r['busy']:,.0f} | "
              f"{r['busy'] / r['idle']:.2f} |" for r in rows]
    return {"rows": rows, "seconds": args.seconds, "competitors": args.competitors,
            "table": "\n".join(lines)}


if __name__ == "__main__":
    sys.exit(main() and 0)
