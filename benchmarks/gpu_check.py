"""GPU check: run on a machine with CUDA to confirm the GPU paths give the CPU's numbers.

1. trains vae-mnist (quick profile) on the GPU and on the CPU with the same seed, evaluates
   both, and checks that the test ELBOs agree within 0.5 nats (float32 on both; the
   difference comes from kernel summation order only);
2. trains one epoch with ``train.precision = "bf16"`` and ``"fp16"`` (grad scaler) on the
   GPU and checks the losses are finite and close to fp32's;
3. with at least 2 GPUs, trains one epoch with 2 processes under ``torchrun`` (NCCL DDP);
4. prints the GPU's training throughput (samples/s) beside the CPU's.

Without CUDA it prints "no CUDA device: nothing to check" and exits 0.

    python benchmarks/gpu_check.py [--data-dir ../shared/data] [--epochs 30]
        [--cpu-run RUN]   # reuse a finished CPU run of vae-mnist instead of training one
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import autoencoders as ae
from autoencoders.config import load_experiment

TOLERANCE_NATS = 0.5


def _config(args, device: str, extra: list[str] = ()):
    overrides = [f"train.device={json.dumps(device)}", f"train.epochs={args.epochs}",
                 f"eval.iw_samples={args.iw_samples}", *extra]
    if args.data_dir:
        overrides.append(f"data.data_dir={json.dumps(args.data_dir)}")
    return load_experiment("vae-mnist", "quick", overrides)


def _rate(run) -> float:
    last = run.metrics()[-1]
    return last["samples"] / max(last["time"], 1e-9)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with the MNIST files")
    p.add_argument("--epochs", type=int, default=30, help="epochs of both runs (quick: 30)")
    p.add_argument("--iw-samples", type=int, default=1000, help="K of the test log p(x)")
    p.add_argument("--cpu-run", default=None, help="a finished CPU run to compare against")
    p.add_argument("--runs-dir", default=None, help="where the runs go (default: a temp dir)")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    runs = Path(args.runs_dir or tempfile.mkdtemp(prefix="gpu_check-"))
    print(f"GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} device(s)); "
          f"runs in {runs}")
    failures = []

    gpu = ae.train(_config(args, "cuda"), runs_dir=str(runs / "gpu"), progress=False)
    gpu_eval = ae.evaluate(gpu, progress=False, device="cuda")
    if args.cpu_run:
        cpu = ae.load_run(args.cpu_run)
        cpu_eval = cpu.eval_results() or ae.evaluate(cpu, progress=False, device="cpu")
    else:
        cpu = ae.train(_config(args, "cpu"), runs_dir=str(runs / "cpu"), progress=False)
        cpu_eval = ae.evaluate(cpu, progress=False, device="cpu")
    diff = abs(gpu_eval["test/elbo"] - cpu_eval["test/elbo"])
    print(f"test ELBO: GPU {gpu_eval['test/elbo']:.3f}, CPU {cpu_eval['test/elbo']:.3f} "
          f"(|diff| {diff:.3f} nats, tolerance {TOLERANCE_NATS})")
    print(f"test log p(x): GPU {gpu_eval['test/log_px']:.3f}, CPU "
          f"{cpu_eval['test/log_px']:.3f}")
    if not diff <= TOLERANCE_NATS:
        failures.append(f"GPU and CPU ELBOs differ by {diff:.3f} nats")
    print(f"throughput: GPU {_rate(gpu):,.0f} samples/s, CPU {_rate(cpu):,.0f} samples/s")

    fp32_loss = gpu.metrics()[0]["train/loss"]
    for precision in ("bf16", "fp16"):
        run = ae.train(_config(args, "cuda", [f'train.precision="{precision}"',
                                              "train.epochs=1"]),
                       runs_dir=str(runs / precision), progress=False)
        loss = run.metrics()[0]["train/loss"]
        print(f"{precision}: epoch-1 train loss {loss:.3f} (fp32 {fp32_loss:.3f}), "
              f"{_rate(run):,.0f} samples/s")
        if not (abs(loss - fp32_loss) < 2.0):
            failures.append(f"{precision} epoch-1 loss {loss:.3f} vs fp32 {fp32_loss:.3f}")

    if torch.cuda.device_count() >= 2:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "-m", "autoencoders", "train", "vae-mnist", "--device", "cuda",
               "--runs-dir", str(runs / "ddp"), "--no-progress", "--set", "train.epochs=1"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        done = subprocess.run(cmd, env={**os.environ}, capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"NCCL DDP failed: {done.stderr.strip()[-500:]}")
        else:
            ddp = ae.load_run(next((runs / "ddp" / "vae-mnist").iterdir()))
            print(f"NCCL DDP, 2 processes: epoch-1 train loss "
                  f"{ddp.metrics()[0]['train/loss']:.3f}, {_rate(ddp):,.0f} samples/s")
    else:
        print("NCCL DDP: skipped (needs 2 GPUs)")

    for line in failures:
        print(f"FAIL: {line}")
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
