"""What a page's latent explorer needs from a trained model, as plain data.

Three kinds of explorer, chosen from the model:

* ``"plane"``: a 2-D Gaussian latent space and an MLP decoder small enough to ship
  (:data:`MAX_LIVE_PARAMS`). The browser decodes the point under the pointer; the test
  codes (posterior means) are drawn behind it, coloured by label.
* ``"sliders"``: a higher-dimensional latent space and a small MLP decoder. One slider per
  latent (Gaussian latents sorted by their KL on test images, highest first; stick-breaking
  latents are the stick fractions v_k in stick order), and a strip of test images whose
  codes set every slider ("encode this test image": the codes are the encoder's, computed
  here).
* ``"frames"``: a Gaussian-latent model whose decoder is convolutional or too large to
  ship: traversal frames decoded here (one seed image, each latent over [-3, 3]) and picked
  by the same sliders.

The decoder is exported as its layers (weights row-major, ``out x in``, then the bias) in
float16 when that keeps every decoded pixel within :data:`FP16_TOLERANCE` of the float32
decoder on a set of codes, else float32; the browser runs the forward pass in float32
(``static/explorer.js``). Only the image means are exported: the rows of a Gaussian
decoder's last layer that give the log-variances are dropped.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.nets import ACTIVATIONS, Unflatten
from ..models.sbvae import StickBreakingVAE, kumaraswamy_log_mean
from ..models.vae import VAE
from ..traversal_plots import traversal_images

MAX_LIVE_PARAMS = 1_500_000  # larger decoders (beta-VAE's 3 x 1200 dSprites MLP) get frames
FP16_TOLERANCE = 0.5 / 255  # float16 weights only if they move no pixel by more than this
MAX_SLIDERS = 10
SCATTER_POINTS = 2000
STRIP_IMAGES = 12
FRAME_STEPS = 11
LIMIT = 3.0  # sliders and the plane span [-LIMIT, LIMIT] for Gaussian latents

_ACT_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


def live_params(model) -> int:
    """Parameters the browser's decoder would ship (0 when the decoder is not an MLP)."""
    layers = mlp_layers(model)
    return 0 if layers is None else int(sum(w.numel() + b.numel() for w, b, _ in layers))


def kind(model, live: bool = True) -> str | None:
    """``"plane"``, ``"sliders"``, ``"frames"`` or None (no explorer for this model).

    ``live = False`` (the page's budget for decoder weights is spent) asks for frames where
    the model has them."""
    small = live and 0 < live_params(model) <= MAX_LIVE_PARAMS
    if isinstance(model, StickBreakingVAE):
        return "sliders" if small else None
    if isinstance(model, VAE):
        if small:
            return "plane" if model.latent_dim == 2 else "sliders"
        return "frames"
    return None


def has_latents(model) -> bool:
    """Whether the model has a latent space a page can explore (VAE, beta-VAE, SB-VAE)."""
    return isinstance(model, (VAE, StickBreakingVAE))


def why_not(model) -> str:
    """One sentence for a page whose latent-variable model gets no explorer."""
    return ("No explorer: this stick-breaking VAE's decoder is not an MLP small enough to "
            "run in the browser (or the page's budget for decoder weights is spent), and "
            "its sticks have no traversal frames.")


def mlp_layers(model) -> list[tuple[torch.Tensor, torch.Tensor, str]] | None:
    """The decoder as ``[(weight, bias, activation after it), ...]``, or None when it is
    not an MLP (``Linear`` and activation modules, then ``Unflatten``)."""
    if not isinstance(model, (VAE, StickBreakingVAE)):
        return None
    if isinstance(model, VAE) and model.config.arch != "mlp":
        return None
    modules = [m for m in model.decoder.modules()
               if not isinstance(m, (nn.Sequential, Unflatten))]
    layers: list[tuple[torch.Tensor, torch.Tensor, str]] = []
    for m in modules:
        if isinstance(m, nn.Linear):
            layers.append((m.weight.detach().float(), m.bias.detach().float(), "identity"))
        elif type(m) in _ACT_NAMES and layers and layers[-1][2] == "identity":
            w, b, _ = layers[-1]
            layers[-1] = (w, b, _ACT_NAMES[type(m)])
        else:
            return None  # a module this exporter does not know: no live explorer
    return layers


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


@torch.no_grad()
def decoder_spec(model) -> dict[str, Any]:
    """The decoder's layers for ``explorer.js``: dtype, shapes, activations, base64 data."""
    layers = mlp_layers(model)
    assert layers is not None
    c, h, w = model.image_shape
    n_out = c * h * w  # the image means: the first C channels of the decoder's output
    w_last, b_last, act_last = layers[-1]
    layers = [*layers[:-1], (w_last[:n_out], b_last[:n_out], act_last)]
    dtype = "float16" if _fp16_ok(model, layers) else "float32"
    np_dtype = np.float16 if dtype == "float16" else np.float32
    blobs, shapes, acts = [], [], []
    for wt, b, act in layers:
        blobs += [wt.numpy().astype(np_dtype).ravel(), b.numpy().astype(np_dtype)]
        shapes.append([int(wt.shape[0]), int(wt.shape[1])])
        acts.append(act)
    return {
        "dtype": dtype,
        "shapes": shapes,
        "activations": acts,
        "output": "sigmoid",  # Bernoulli means and the Gaussian means: sigmoid(raw output)
        "image": [int(c), int(h), int(w)],
        "data": _b64(np.concatenate(blobs)),
    }


def _fp16_ok(model, layers) -> bool:
    """Whether float16 weights keep every pixel within FP16_TOLERANCE of float32 on codes
    spread over the latent space."""
    z = decoder_inputs(model, torch.Generator().manual_seed(0), 64)
    full = _forward(layers, z)
    half = _forward([(w.half().float(), b.half().float(), a) for w, b, a in layers], z)
    return float((full - half).abs().max()) <= FP16_TOLERANCE


def _forward(layers, x: torch.Tensor) -> torch.Tensor:
    for w, b, act in layers:
        x = ACTIVATIONS[act]()(x @ w.T + b)
    return torch.sigmoid(x)


def decoder_inputs(model, generator: torch.Generator, n: int) -> torch.Tensor:
    """What the exported decoder reads for ``n`` random codes: z ~ U(-3, 3) for Gaussian
    latents; for stick-breaking latents ``decoder_input_scale * pi`` from random sticks."""
    if isinstance(model, StickBreakingVAE):
        v = torch.rand(n, model.latent_dim - 1, generator=generator)
        return sticks_to_input(model, v)
    return (torch.rand(n, model.latent_dim, generator=generator) * 2 - 1) * LIMIT


def sticks_to_input(model: StickBreakingVAE, v: torch.Tensor) -> torch.Tensor:
    """Stick fractions ``(..., K - 1)`` -> the decoder's input ``scale * pi`` ``(..., K)``,
    pi_k = v_k prod_{j<k} (1 - v_j), pi_K = prod_{j<K} (1 - v_j) (same as explorer.js)."""
    rest = torch.cumprod(1 - v, dim=-1)
    before = torch.cat([torch.ones_like(v[..., :1]), rest[..., :-1]], dim=-1)
    pi = torch.cat([v * before, rest[..., -1:]], dim=-1)
    return pi * model.config.decoder_input_scale


@torch.no_grad()
def image_of(model, latent: torch.Tensor) -> torch.Tensor:
    """PyTorch's decoded image means ``(N, C*H*W)`` for explorer coordinates ``latent``
    (z for Gaussian latents, stick fractions v for stick-breaking ones): what the browser's
    forward pass must reproduce."""
    if isinstance(model, StickBreakingVAE):
        out = model.lik.mean(model.decoder(sticks_to_input(model, latent)))
    else:
        out = model.lik.mean(model.decode(latent))
    return out.flatten(1)


@torch.no_grad()
def codes(model, x: torch.Tensor) -> np.ndarray:
    """Explorer coordinates of images: posterior means (Gaussian) or the stick fractions
    E_q[v_k] (stick-breaking: the expected stick weights E_q[pi] are built from these)."""
    if isinstance(model, StickBreakingVAE):
        a, b = model.encode(x)
        return kumaraswamy_log_mean(a, b).exp().numpy()
    return model.encode(x)[0].numpy()


def _rounded(array: np.ndarray, digits: int) -> list:
    """A list of short decimals for JSON (float32 values print with ~17 digits)."""
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def _uint8(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def _png_b64(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _strip(model, x: torch.Tensor) -> dict[str, Any]:
    """Test images (grey or RGB PNG, side by side) and their explorer coordinates."""
    x = x[:STRIP_IMAGES]
    tiles = _uint8(x)  # (N, C, H, W)
    row = np.concatenate(list(tiles.transpose(0, 2, 3, 1)), axis=1)  # (H, N*W, C)
    row = row[..., 0] if row.shape[-1] == 1 else row
    return {"png": _png_b64(row), "n": int(x.shape[0]),
            "codes": _rounded(codes(model, x), 4)}


@torch.no_grad()
def explorer_data(model, test_x: torch.Tensor, test_y: torch.Tensor | None,
                  live: bool = True) -> dict[str, Any]:
    """Everything ``explorer.js`` needs for one model (see the module docstring)."""
    model.eval()
    k = kind(model, live)
    assert k is not None
    c, h, w = model.image_shape
    out: dict[str, Any] = {"kind": k, "image": [int(c), int(h), int(w)]}
    if isinstance(model, StickBreakingVAE):
        n = min(MAX_SLIDERS, model.latent_dim - 1)
        mean_v = codes(model, test_x[:2000]).mean(0)
        out.update(latent="sticks", n_latent=model.latent_dim - 1,
                   input_scale=float(model.config.decoder_input_scale),
                   sliders=[{"index": i, "label": f"v{i + 1}", "min": 0.0, "max": 1.0,
                             "note": f"mean {mean_v[i]:.2f}"} for i in range(n)],
                   base=_rounded(mean_v, 4))
    else:
        kl = model.kl_per_dim(test_x[:2000]).numpy()
        order = [int(d) for d in np.argsort(-kl)]
        out.update(latent="gaussian", n_latent=model.latent_dim,
                   sliders=[{"index": d, "label": f"z{d}", "min": -LIMIT, "max": LIMIT,
                             "note": f"KL {kl[d]:.2f}"} for d in order[:MAX_SLIDERS]],
                   base=[0.0] * model.latent_dim)
    if k == "frames":
        out.update(_frames(model, test_x[:1], [s["index"] for s in out["sliders"]]))
        out["base"] = _rounded(codes(model, test_x[:1])[0], 4)
        return out
    out["decoder"] = decoder_spec(model)
    out["strip"] = _strip(model, test_x)
    if k == "plane":
        xy = codes(model, test_x[:SCATTER_POINTS])
        out["scatter"] = {"xy": _rounded(xy.ravel(), 3),
                          "labels": (test_y[:SCATTER_POINTS].tolist()
                                     if test_y is not None else None),
                          "limit": LIMIT}
    return out


@torch.no_grad()
def _frames(model, seed: torch.Tensor, order: list[int]) -> dict[str, Any]:
    """Traversal frames as one PNG sheet: a row per slider, FRAME_STEPS columns."""
    imgs = traversal_images(model, seed, np.array(order), FRAME_STEPS, LIMIT)[:, 0]
    rows, steps, c, h, w = imgs.shape
    sheet = _uint8(imgs).transpose(0, 3, 1, 4, 2).reshape(rows * h, steps * w, c)
    sheet = sheet[..., 0] if c == 1 else sheet
    return {"frames": {"png": _png_b64(sheet), "steps": steps, "rows": rows,
                       "values": [round(-LIMIT + 2 * LIMIT * i / (steps - 1), 3)
                                  for i in range(steps)]}}
