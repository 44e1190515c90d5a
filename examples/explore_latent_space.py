"""Look inside a trained VAE without training anything or downloading data.

Loads the pretrained 2-D MNIST VAE shipped with the package, draws its latent manifold
(Kingma & Welling, Figure 4) and interpolates between two codes drawn from the prior.

    python examples/explore_latent_space.py [--model vae-mnist-2d] [--out latent-figures]
"""

import argparse
from pathlib import Path

import torch

import autoencoders as ae
from autoencoders.plots import plot_manifold, save_grid

p = argparse.ArgumentParser()
p.add_argument("--model", default="vae-mnist-2d", help=f"one of {ae.pretrained_names()}")
p.add_argument("--out", default="latent-figures")
p.add_argument("--steps", type=int, default=10)
args = p.parse_args()
out = Path(args.out)

model = ae.pretrained(args.model)
info = model.pretrained_info
print(f"{args.model}: {type(model).__name__} with {model.latent_dim}-D latent space, "
      f"test ELBO {info['eval'].get('test/elbo', float('nan')):.2f} nats "
      f"(trained with: {info['command'] or 'see docs/REPRODUCTIONS.md'})")

if plot_manifold(model, out / "manifold.png", n=20):
    print(f"manifold:      {out / 'manifold.png'}")

# interpolate in a straight line between pairs of codes drawn from the prior
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    z0, z1 = model.sample_prior(4, g), model.sample_prior(4, g)
    t = torch.linspace(0, 1, args.steps).view(1, -1, 1)
    z = z0[:, None] * (1 - t) + z1[:, None] * t  # (pairs, steps, latent_dim)
    x = model.lik.mean(model.decode(z.reshape(-1, model.latent_dim)))
save_grid(x, out / "interpolation.png", nrow=args.steps)
print(f"interpolation: {out / 'interpolation.png'}")
