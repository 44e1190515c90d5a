"""Training throughput of the Kingma & Welling MNIST VAE on this machine.

784-500-20 tanh MLPs, Bernoulli decoder, batch 100, Adam, one epoch of 60,000 images, for:

1. ``ours``: ``autoencoders.train.train`` (the library's trainer, as users run it), and
   ``ours-bf16`` with ``train.precision = "bf16"`` (autocast matmuls, fp32 weights);
2. ``eager``: a plain PyTorch loop written here (index-sliced batches, no logging) — the
   floor a hand-written script reaches;
3. ``pythae``: pythae's ``VAE`` + ``BaseTrainer`` with the same layer sizes, when pythae is
   importable (``make bench`` installs it into its own environment, .venv-bench).

All in one process, same thread count, median of ``--repeats`` runs. Prints samples/s,
ratios, and FLOP/s against a matmul peak measured here on the same matrix sizes.

    python benchmarks/train_throughput.py [--data-dir ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from autoencoders.config import load_experiment
from autoencoders.data import get
from autoencoders.models.vae import VAE, VAEConfig
from autoencoders.train import train

D, H, Z, B = 784, 500, 20, 100
# forward matmul FLOPs per sample: encoder 784x500 + 500x40, decoder 20x500 + 500x784;
# backward costs about twice the forward
FLOP_PER_SAMPLE = 3 * 2 * (D * H + H * 2 * Z + Z * H + H * D)


def matmul_peak(seconds: float = 2.0) -> float:
    """FLOP/s of the forward and backward matmuls of this model at batch 100, fp32."""
    a = torch.randn(B, D)
    w1, w2 = torch.randn(D, H), torch.randn(H, D)
    g = torch.randn(B, H)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        h = a @ w1  # (B, H) forward encoder
        _ = h @ w2  # (B, D) forward decoder
        _ = g.T @ a  # weight gradient (H, D)
        _ = g @ w1.T  # input gradient (B, D)
        n += 1
    return n * 2 * B * D * H * 4 / (time.perf_counter() - t0)


def run_ours(data_dir: str | None, n: int, precision: str = "fp32") -> float:
    cfg = load_experiment("vae-mnist", "quick", {
        "train.epochs": 1, "data.valid_size": 0, "data.binarize": "static",
        "data.data_dir": data_dir, "data.train_size": n, "train.precision": precision})
    with tempfile.TemporaryDirectory() as d:
        run = train(cfg, runs_dir=d, progress=False, log_epochs=False)
        return run.metrics()[-1]["time"]


def run_eager(x: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=Z, hidden=H), (1, 28, 28))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(0, len(x), B):
        xb = x[perm[i:i + B]]
        loss = model.loss(xb).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def run_pythae(x: torch.Tensor) -> float | None:
    try:
        from pythae.data.datasets import BaseDataset
        from pythae.models import VAE as PVAE
        from pythae.models import VAEConfig as PVAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
        from pythae.trainers import BaseTrainer, BaseTrainerConfig
    except ImportError:
        return None

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.h = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Tanh())
            self.mu, self.lv = torch.nn.Linear(H, Z), torch.nn.Linear(H, Z)

        def forward(self, x):
            h = self.h(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.lv(h))

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(Z, H), torch.nn.Tanh(),
                                           torch.nn.Linear(H, D), torch.nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(z.shape[0], 1, 28, 28))

    cfg = PVAEConfig(input_dim=(1, 28, 28), latent_dim=Z, reconstruction_loss="bce")
    model = PVAE(cfg, encoder=Enc(), decoder=Dec())
    with tempfile.TemporaryDirectory() as d:
        tcfg = BaseTrainerConfig(output_dir=d, num_epochs=1, learning_rate=1e-3,
                                 per_device_train_batch_size=B, optimizer_cls="Adam",
                                 no_cuda=True, steps_saving=None, steps_predict=None)
        data = BaseDataset(x, torch.zeros(len(x)))
        trainer = BaseTrainer(model=model, train_dataset=data, training_config=tcfg)
        t0 = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=60000, help="training images per epoch")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    x = get("mnist", "train", data_dir=args.data_dir, valid_size=0, binarize="static").x
    x = x[: args.n].contiguous()
    n = len(x)
    peak = matmul_peak()
    times: dict[str, list[float]] = {"ours": [], "ours-bf16": [], "eager": [], "pythae": []}
    for _ in range(args.repeats):  # interleaved, so drift hits every contender alike
        times["ours"].append(run_ours(args.data_dir, n))
        times["ours-bf16"].append(run_ours(args.data_dir, n, "bf16"))
        times["eager"].append(run_eager(x))
        t = run_pythae(x)
        if t is not None:
            times["pythae"].append(t)
    rates = {k: n / statistics.median(v) for k, v in times.items() if v}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"matmul peak at these sizes: {peak / 1e9:.0f} GFLOP/s; "
          f"{FLOP_PER_SAMPLE / 1e6:.2f} MFLOP per training sample")
    print(f"{'trainer':10s} {'samples/s':>10s} {'GFLOP/s':>8s} {'% peak':>7s} {'vs pythae':>9s}")
    for k, r in rates.items():
        vs = f"{r / rates['pythae']:.2f}x" if "pythae" in rates else "n/a"
        print(f"{k:10s} {r:10,.0f} {r * FLOP_PER_SAMPLE / 1e9:8.0f} "
              f"{100 * r * FLOP_PER_SAMPLE / peak:6.0f}% {vs:>9s}")
    if "pythae" not in rates:
        print("pythae is not installed here: `make bench` runs this in .venv-bench with pythae.")
    out = {"samples_per_s": rates, "matmul_peak_flops": peak, "n": n,
           "repeats": args.repeats, "threads": torch.get_num_threads()}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
