"""How faithful is the procedural dSprites generator? Compare it with the real subsets.

For every image of the two real subsets (``dsprites_subset.npz``: 20,000 random images of
all 737,280; ``dsprites_downsampled.npz``: the 46,080-image grid), render the same factor
combination with :func:`autoencoders.data.dsprites.render` and print the mean IoU of the
on-pixels per shape and scale, per shape and orientation (worst ones), and the rate of
pixel-exact matches. Target (issue 9): mean IoU >= 0.95.

Usage:
    python benchmarks/dsprites_fidelity.py [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from autoencoders.data.dsprites import SHAPES, fidelity, read_shared_subset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    for name in ("dsprites_subset.npz", "dsprites_downsampled.npz"):
        path = Path(args.data_dir) / "dsprites" / name
        if not path.is_file():
            print(f"{path}: not found, skipped")
            continue
        imgs, factors = read_shared_subset(path)
        out = fidelity(imgs, factors)
        iou, exact = out["iou"], out["exact"]
        print(f"\n{name}: {len(imgs):,} images, mean IoU {out['mean_iou']:.4f}, "
              f"exact match {100 * out['exact_rate']:.1f} %")
        print("mean IoU per shape (rows) and scale 0.5 ... 1.0 (columns); exact-match %")
        for s, shape in enumerate(SHAPES):
            cells, rates = [], []
            for sc in range(6):
                m = (factors[:, 0] == s) & (factors[:, 1] == sc)
                cells.append(f"{iou[m].mean():.4f}" if m.any() else "   -  ")
                rates.append(f"{100 * exact[m].mean():5.1f}" if m.any() else "  -  ")
            print(f"  {shape:8s} IoU {' '.join(cells)}   exact {' '.join(rates)}")
        worst = []
        for s in range(3):
            for o in np.unique(factors[:, 2]):
                m = (factors[:, 0] == s) & (factors[:, 2] == o)
                worst.append((iou[m].mean(), SHAPES[s], int(o)))
        worst.sort()
        print("worst (shape, orientation class): " + ", ".join(
            f"{sh} o={o} {v:.3f}" for v, sh, o in worst[:4]))
        print(f"min IoU of any image {iou.min():.3f}; images with IoU < 0.9: "
              f"{int((iou < 0.9).sum())}")


if __name__ == "__main__":
    main()
