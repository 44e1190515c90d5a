"""Training throughput on a busy machine: how thread count and OpenMP's wait policy behave
when another process keeps one core busy.

For each setting (``OMP_WAIT_POLICY`` = ACTIVE / PASSIVE, torch threads = all cores / one)
a fresh Python process (the policy is read when OpenMP starts) times Adam steps of the
Kingma & Welling MNIST VAE (784-500-20 tanh, batch 100, random binary images: the speed
does not depend on the data) twice: alone, and beside ``--competitors`` processes that spin
on the CPU. Prints the CPU's features, samples/s for each case and the busy / idle ratio.

    python benchmarks/busy_machine.py [--seconds 8] [--competitors 1]

The library's default (``autoencoders.threads``) is the row marked "default".
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


def measure(policy: str | None, threads: int, seconds: float) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(seconds)], env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--competitors", type=int, default=1)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}")
    settings = [("ACTIVE", cores), ("PASSIVE", cores), ("ACTIVE", 1), ("PASSIVE", 1),
                (None, 0)]
    print(f"{'OMP_WAIT_POLICY':16s} {'threads':>7s} {'idle':>10s} {'busy':>10s} {'ratio':>6s}")
    for policy, threads in settings:
        idle = measure(policy, threads, args.seconds)
        procs = [mp.Process(target=spin, daemon=True) for _ in range(args.competitors)]
        for proc in procs:
            proc.start()
        time.sleep(0.5)
        try:
            busy = measure(policy, threads, args.seconds)
        finally:
            for proc in procs:
                proc.terminate()
                proc.join()
        name = policy or "default"
        shown = threads or "default"
        print(f"{name:16s} {shown!s:>7s} {idle:10,.0f} {busy:10,.0f} {busy / idle:6.2f}",
              flush=True)


if __name__ == "__main__":
    main()
