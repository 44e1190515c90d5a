"""Latent traversals: vary one latent at a time over +-3 around a seed's code, the others
fixed, one row per latent sorted by how much information it carries (KL), as in the
beta-VAE paper's figures.

    python examples/traverse.py                      # the pretrained MNIST VAE, no data
    python examples/traverse.py runs/betavae-dsprites/<ts>/betavae-beta4   # your beta-VAE

With a run folder, seeds come from its test split; without, from the model's own samples.
"""

import argparse
from pathlib import Path

import torch

import autoencoders as ae
from autoencoders.traversal_plots import plot_traversals

p = argparse.ArgumentParser()
p.add_argument("run", nargs="?", help="a run folder of a VAE / beta-VAE (default: pretrained)")
p.add_argument("--out", default="traversal-figures")
args = p.parse_args()

g = torch.Generator().manual_seed(0)
if args.run:
    run = ae.load_run(args.run)
    model = run.load_model()
    from autoencoders.data.load import load_split

    x = load_split(run.config, "test").x[:500]
else:
    model = ae.pretrained("vae-mnist-20d")
    with torch.no_grad():  # digits from the model itself: nothing to download
        x = torch.bernoulli(model.sample(500, generator=g), generator=g)
path = plot_traversals(model, x[:3], x, Path(args.out) / "traversals.png")
print(f"traversals: {path}")
