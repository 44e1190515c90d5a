"""How the rendering constants in autoencoders/data/dsprites.py were obtained.

For one shape (argument 0 square, 1 ellipse, 2 heart), take 600 random images of that shape
from the real grid subset (dsprites_downsampled.npz), render the same factors with a soft
rasteriser (sigmoid of 4 x the signed distance to the outline, in pixels) and fit the
outline parameters, the centre mapping (offset o + span k * pos) and a per-shape bias q by
Adam on the binary cross-entropy with the real pixels (200 steps, lr 0.05). Prints the
hard-threshold IoU and exact-match rate of the fitted shape on those images, and the values
(rounded into SQUARE_HALF, ELLIPSE_AXES, HEART, BIAS; o = 15.5 and k = 32 were kept round).

Usage: python benchmarks/dsprites_fit.py SHAPE   (a few minutes on a CPU)
"""
import math
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
d = np.load(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'dsprites'
            / 'dsprites_downsampled.npz', allow_pickle=False)
imgs = d['imgs']
idx = d['original_dataset_indices']
bases = np.array([6 * 40 * 32 * 32, 40 * 32 * 32, 32 * 32, 32, 1])
fac = np.stack([(idx // b) % s for b, s in zip(bases, (3, 6, 40, 32, 32), strict=True)], 1)

shape_id = int(sys.argv[1])
rng = np.random.default_rng(0)
sel = rng.choice(np.nonzero(fac[:, 0] == shape_id)[0], 600, replace=False)
X = torch.from_numpy(imgs[sel]).float()
F = torch.from_numpy(fac[sel])
scale = 0.5 + 0.1 * F[:, 1].double()
theta = F[:, 2].double() * 2 * math.pi / 39
px = F[:, 3].double() / 31
py = F[:, 4].double() / 31

grid = torch.arange(64, dtype=torch.float64)


def coords(o, k, sign):
    cx = o + k * px
    cy = o + k * py
    dx = grid[None, None, :] - cx[:, None, None]
    dy = -(grid[None, :, None] - cy[:, None, None])
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None] * sign
    u = c * dx + s * dy
    v = -s * dx + c * dy
    sc = scale[:, None, None]
    return u / sc, v / sc, sc


def sdf(u, v, p):
    if shape_id == 0:
        return torch.maximum(u.abs(), v.abs()) - p[0]
    if shape_id == 1:
        a, b = p[0], p[1]
        f = torch.sqrt((u / a) ** 2 + (v / b) ** 2 + 1e-12)
        g = torch.sqrt((u / a**2) ** 2 + (v / b**2) ** 2 + 1e-12) / f
        return (f - 1) / g
    e, f, R, tip, s1, top, s2 = (p[i] for i in range(7))
    disc = torch.sqrt((u.abs() - e) ** 2 + (v - f) ** 2 + 1e-12) - R
    body = torch.maximum((u.abs() - (v - tip) * s1) / torch.sqrt(1 + s1**2),
                         (u.abs() - (top - v) * s2) / torch.sqrt(1 + s2**2))
    return torch.minimum(disc, body)


init = {0: [10.0], 1: [12.5, 7.5], 2: [4.75, 4.68, 4.53, -8.3, 1.0, 5.1, 1.0]}[shape_id]
best = None
for sign in (1.0,):  # rotation direction; -1 fits far worse (IoU 0.80 for squares)
    p = torch.tensor(init, dtype=torch.float64, requires_grad=True)
    o = torch.tensor(15.5, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(32.0, dtype=torch.float64, requires_grad=True)
    q = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p, o, k, q], lr=0.05)
    for _ in range(200):
        u, v, sc = coords(o, k, sign)
        dist = sdf(u, v, p) * sc - q  # pixels; inside where < 0
        logits = -dist * 4.0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, X.double())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        u, v, sc = coords(o, k, sign)
        m = (sdf(u, v, p) * sc - q) <= 0
        inter = (m & (X > 0)).flatten(1).sum(1).double()
        union = (m | (X > 0)).flatten(1).sum(1).double()
        iou = (inter / union).mean().item()
        exact = (m == (X > 0)).flatten(1).all(1).double().mean().item()
    print(shape_id, 'sign', sign, 'loss', loss.item(), 'iou', iou, 'exact', exact,
          'p', p.tolist(), 'o', o.item(), 'k', k.item(), 'q', q.item(), flush=True)
