"""Denoise corrupted digits with the pretrained denoising autoencoder: no data, no training.

Clean digits are drawn from the pretrained VAE's decoder (so nothing is downloaded), pixels
are masked (set to 0) at 25 % and 50 %, and the DAE (trained at 25 % masking noise)
restores them. Rows: clean, corrupted 25 %, restored, corrupted 50 %, restored.

    python examples/denoise.py [--out denoise-figures]
"""

import argparse
from pathlib import Path

import torch

import autoencoders as ae
from autoencoders.models.dae import mask_noise
from autoencoders.plots import save_grid

p = argparse.ArgumentParser()
p.add_argument("--out", default="denoise-figures")
p.add_argument("--n", type=int, default=12)
args = p.parse_args()

vae, dae = ae.pretrained("vae-mnist-20d"), ae.pretrained("dae-mnist-25")
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    clean = vae.sample(args.n, generator=g)  # (n, 1, 28, 28) decoder means in [0, 1]
    rows = [clean]
    for nu in (0.25, 0.5):
        noisy = mask_noise(clean, nu, generator=g)
        restored = dae.reconstruct(noisy)
        rows += [noisy, restored]
        err = lambda a: float((a - clean).abs().mean())  # noqa: E731
        print(f"masking {nu:.0%}: mean |error| {err(noisy):.3f} corrupted -> "
              f"{err(restored):.3f} restored")
path = save_grid(torch.cat(rows), Path(args.out) / "denoise.png", nrow=args.n)
print(f"figure: {path}")
