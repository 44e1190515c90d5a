"""Training throughput of every shipped model, as its experiment file configures it.

One row per model, built by ``autoencoders.registry.build_model`` from
``autoencoders.config.load_experiment(name, profile)``: the Kingma & Welling VAE
(``vae-mnist``, the reference row, the model of ``train_throughput.py``), the DAE
(``dae-filters``), the k-sparse AE (``ksparse-filters``), layer 1 of the SdA pre-training
(``sda-mnist-basic`` with ``model.stage = 1``), the SB-VAE (``sbvae-mnist``), the FC beta-VAE
(``betavae-dsprites``) and the conv beta-VAE (``betavae-dsprites-capacity``), in fp32 and with
``train.precision = "bf16"``. Three measurements per row, all after a warm-up, median of
``--repeats``, interleaved so that drift hits every row alike, same thread count for all:

* ``trainer``: ``autoencoders.train.train`` itself, one epoch, its own epoch time from
  ``metrics.jsonl`` (no validation, checkpoint writes not counted). The trainer has no
  step function to call alone, so it is fed synthetic data: ``train.load_split`` is
  replaced in this process by a function returning ``torch.rand`` images of the data
  set's shape (binary for dSprites, grey for ``binarize = "none"``, grey and binarised
  by the trainer every batch for ``"dynamic"``). No data files are needed.
* ``bare``: ``model.loss(x)`` + ``backward`` + the optimiser's step (the experiment's,
  from ``train.make_optimizer``) in a plain loop over index-sliced batches (with the same
  per-batch binarisation), no trainer: the floor for that model's step. trainer / bare
  is the trainer's own overhead. fp32 only.
* ``bare, foreach optimiser``: the same with the optimiser built with ``foreach=True``
  (what ``train.make_optimizer`` used before it switched to ``fused=True``).

Also printed: forward FLOPs per sample counted by ``torch.utils.flop_counter`` (for the
MLPs exactly 2 * in * out per linear layer; for the conv net 2 * Cin * Cout * k^2 per
output position), times 3 for forward + backward as in ``train_throughput.py``; the
resulting GFLOP/s; and the matmul peak measured here (``train_throughput.matmul_peak``,
fp32, and the same loop in bf16).

    python benchmarks/train_steps.py [--repeats 3] [--seconds 2] [--threads N]
    python benchmarks/train_steps.py --quick      # tiny sizes: checks that it runs

Prints a Markdown table; ``main()`` also returns it (``benchmarks/all.py`` writes it
into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))

import train_throughput  # noqa: E402

from autoencoders import devices  # noqa: E402
from autoencoders.config import load_experiment  # noqa: E402
from autoencoders.data import DATASETS, ImageData  # noqa: E402
from autoencoders.registry import build_model  # noqa: E402

# the module, not the function: ``autoencoders.train`` is the function train() once the
# package's __init__ has run, so ``import autoencoders.train as m`` gives the function
trainer = importlib.import_module("autoencoders.train")

# (label, experiment, overrides). The model is the experiment's [model] section (not its
# sweep), so e.g. dae-filters is the 25 % noise DAE and ksparse-filters the k = 25 AE.
ROWS: list[tuple[str, str, dict]] = [
    ("VAE 784-500-20, the reference", "vae-mnist", {}),
    ("DAE 784-500 tied", "dae-filters", {}),
    ("k-sparse AE 784-1000, k = 25", "ksparse-filters", {}),
    ("SdA pre-training, layer 1 (784-1000)", "sda-mnist-basic", {"model.stage": 1}),
    ("SB-VAE 784-500-50", "sbvae-mnist", {}),
    ("beta-VAE FC, dSprites 64x64", "betavae-dsprites", {}),
    ("beta-VAE conv, dSprites 64x64", "betavae-dsprites-capacity", {}),
]
PRECISIONS = ("fp32", "bf16")


def matmul_peak_bf16(seconds: float = 2.0) -> float:
    """``train_throughput.matmul_peak``'s loop (batch 100, 784 x 500) in bfloat16."""
    B, D, H = train_throughput.B, train_throughput.D, train_throughput.H
    bf = torch.bfloat16
    a, g = torch.randn(B, D, dtype=bf), torch.randn(B, H, dtype=bf)
    w1, w2 = torch.randn(D, H, dtype=bf), torch.randn(H, D, dtype=bf)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        h = a @ w1
        _ = h @ w2
        _ = g.T @ a
        _ = g @ w1.T
        n += 1
    return n * 2 * B * D * H * 4 / (time.perf_counter() - t0)


def config_for(experiment: str, overrides: dict, profile: str, precision: str, threads: int):
    return load_experiment(experiment, profile, {
        **overrides, "train.epochs": 1, "data.valid_size": 0, "train.early_stopping": 0,
        "train.checkpoint_every": 0, "train.init_from": "", "train.threads": threads,
        "train.precision": precision})


def image_shape(cfg) -> tuple[int, int, int]:
    return tuple(DATASETS[cfg.data.name].image_shape)


def synthetic(cfg, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random images shaped like the experiment's data: binary where the data is
    binary (dSprites, static binarisation), grey otherwise (the trainer binarises
    ``dynamic`` data itself, every batch)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *image_shape(cfg), generator=g)
    if cfg.data.binarize == "static" or cfg.data.name.startswith("dsprites"):
        x = torch.bernoulli(x, generator=g)
    return x


@contextmanager
def synthetic_train_split(x: torch.Tensor):
    """Make ``autoencoders.train.train`` read ``x`` as its train split (this process only)."""
    real = trainer.load_split

    def fake(config, split, device="cpu", *args, **kwargs):
        if split != "train":
            raise RuntimeError("train_steps.py runs without validation (data.valid_size = 0)")
        binarize = "dynamic" if config.data.binarize == "dynamic" else "none"
        return ImageData(name=config.data.name, split=split, x=x.to(device), y=None,
                         binarize=binarize)

    trainer.load_split = fake
    try:
        yield
    finally:
        trainer.load_split = real


def trainer_seconds(cfg, x: torch.Tensor) -> float:
    """One epoch of the library's trainer over ``x``: its own epoch time (metrics.jsonl)."""
    with tempfile.TemporaryDirectory() as d, synthetic_train_split(x):
        run = trainer.train(cfg, runs_dir=d, progress=False, log_epochs=False)
        return float(run.metrics()[-1]["time"])


def foreach_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """``train.make_optimizer`` as it was (``foreach=True``) before ``fused=True``."""
    cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
           "sgd": torch.optim.SGD}[cfg.optimizer]
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def bare_seconds(cfg, x: torch.Tensor, warmup: int = 3, foreach: bool = False,
                 compiled: bool = False) -> float:
    """model.loss + backward + optimiser step over ``x`` in index-sliced batches, no
    trainer; ``warmup`` untimed steps first. ``foreach``: :func:`foreach_optimizer`.
    ``compiled``: the loss as ``train.compile = true`` runs it (``train.CompiledLoss``;
    its compile falls in the warm-up steps)."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, image_shape(cfg))
    model.train()
    model.on_epoch_start(0, 1)
    opt = (foreach_optimizer if foreach else trainer.make_optimizer)(model, cfg.train)
    loss_fn = trainer.CompiledLoss(model.loss) if compiled else model.loss
    bs, dynamic = cfg.train.batch_size, cfg.data.binarize == "dynamic"
    bf16 = cfg.train.precision == "bf16"

    def step(xb):
        if dynamic:
            xb = torch.bernoulli(xb)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(xb).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(x[i * bs % len(x):][:bs])
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(0, len(x), bs):
        step(x[perm[i:i + bs]])
    return time.perf_counter() - t0


def flops_per_sample(cfg) -> float:
    """Forward FLOPs of one batch (torch.utils.flop_counter) x 3, per sample."""
    torch.manual_seed(0)
    model = build_model(cfg.model, image_shape(cfg))
    model.train()
    x = synthetic(cfg, cfg.train.batch_size)
    model.loss(x)  # once outside the count: what a model builds once (the SB-VAE's KL table)
    with FlopCounterMode(display=False) as fc:
        model.loss(x)
    return 3 * fc.get_total_flops() / cfg.train.batch_size


def _fmt(v: float | None, spec: str = ",.0f") -> str:
    return "failed" if v is None else format(v, spec)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0,
                   help="target length of each timed fp32 epoch (sets its number of images)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for every row (0: torch's default here)")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--only", default="", help="comma-separated experiment names to run")
    p.add_argument("--no-bare", action="store_true", help="skip the bare-step column")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 columns")
    p.add_argument("--compile", default="",
                   help="comma-separated experiments whose bare fp32 step is also timed "
                        "with train.compile = true (the others show '-')")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (1 repeat, 0.2 s epochs, short peak): checks that it runs")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds = 1, 0.05
    min_batches = 2 if args.quick else 10
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    # the quick profiles of several experiments set train.threads = 1, which the trainer
    # applies to the whole process: every row is overridden to the same thread count
    rows = [r for r in ROWS if not args.only or r[1] in args.only.split(",")]
    precisions = ("fp32",) if args.no_bf16 else PRECISIONS
    peak_s = 0.3 if args.quick else 2.0
    peak = {"fp32": train_throughput.matmul_peak(peak_s)}
    if "bf16" in precisions:
        peak["bf16"] = matmul_peak_bf16(peak_s)

    # warm-up, and the number of images that makes each timed fp32 epoch ~args.seconds
    data: dict[str, torch.Tensor] = {}
    flops: dict[str, float] = {}
    broken: dict[str, str] = {}  # experiment -> why it could not even be set up
    for _label, exp, over in rows:
        try:
            cfg = config_for(exp, over, args.profile, "fp32", threads)
            bs = cfg.train.batch_size
            flops[exp] = flops_per_sample(cfg)
            warm = synthetic(cfg, min_batches * bs)
            trainer_seconds(cfg, warm)  # first call: allocations, kernels, caches
            rate = len(warm) / max(trainer_seconds(cfg, warm), 1e-6)
        except Exception as e:  # say so in the table, time the other rows
            broken[exp] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        n_batches = max(min_batches, round(rate * args.seconds / bs))
        data[exp] = synthetic(cfg, n_batches * bs, seed=1)

    # what is timed: the trainer in every precision; the bare step (and the bare step
    # with the old foreach optimiser) in fp32 only
    kinds = {"fp32": ["trainer"] + ([] if args.no_bare else ["bare", "fused"]),
             "bf16": ["trainer"]}
    compile_exps = [e for e in args.compile.split(",") if e]
    cap = devices.inductor_cap_mismatch()
    if compile_exps and cap:  # torch.compile's CPU code is wrong under such a cap
        print(f"train.compile rows skipped: ATEN_CPU_CAPABILITY={cap} caps PyTorch below "
              "this CPU")
        compile_exps = []
    if compile_exps:
        kinds["fp32"].append("compiled")
    measure = {"trainer": lambda cfg, x: trainer_seconds(cfg, x),
               "bare": lambda cfg, x: bare_seconds(cfg, x),
               "fused": lambda cfg, x: bare_seconds(cfg, x, foreach=True),
               "compiled": lambda cfg, x: bare_seconds(cfg, x, warmup=10, compiled=True)}
    times: dict[tuple[str, str, str], list[float]] = {}
    errors: dict[tuple[str, str, str], str] = {}
    for _ in range(args.repeats):
        for _label, exp, over in rows:
            if exp in broken:
                continue
            for prec in precisions:
                cfg = config_for(exp, over, args.profile, prec, threads)
                for kind in kinds[prec]:
                    if (exp, prec, kind) in errors or (kind == "compiled"
                                                       and exp not in compile_exps):
                        continue
                    try:
                        times.setdefault((exp, prec, kind), []).append(
                            measure[kind](cfg, data[exp]))
                    except Exception as e:  # e.g. an op without bf16 support: say so
                        errors[(exp, prec, kind)] = (f"{type(e).__name__}: "
                                                     f"{str(e).splitlines()[0][:200]}")

    def rate(exp, prec, kind):
        if (exp, prec, kind) in errors or not times.get((exp, prec, kind)):
            return None
        return len(data[exp]) / statistics.median(times[(exp, prec, kind)])

    results = {}
    head = ["model (experiment)", "batch", "MFLOP / sample", "fp32 trainer, samples/s"]
    if not args.no_bare:
        head += ["fp32 bare step, samples/s", "trainer / bare",
                 "fp32 bare step, old foreach optimiser, samples/s"]
    head += ["fp32 GFLOP/s (% peak)"]
    if compile_exps:
        head += ["fp32 bare step, train.compile, samples/s (% peak)"]
    if "bf16" in precisions:
        head += ["bf16 trainer, samples/s", "bf16 GFLOP/s (% bf16 peak)", "bf16 / fp32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, exp, over in rows:
        if exp in broken:
            lines.append(f"| {label} (`{exp}`) | failed: {broken[exp]} |"
                         + " |" * (len(head) - 2))
            continue
        cfg = config_for(exp, over, args.profile, "fp32", threads)
        fps = flops[exp]
        r32, b32 = rate(exp, "fp32", "trainer"), rate(exp, "fp32", "bare")
        f32 = rate(exp, "fp32", "fused")
        cells = [f"{label} (`{exp}`)", str(cfg.train.batch_size), f"{fps / 1e6:.2f}",
                 _fmt(r32)]
        if not args.no_bare:
            cells += [_fmt(b32), f"{r32 / b32:.2f}" if r32 and b32 else "",
                      _fmt(f32) + (f" ({f32 / b32:.2f}x)" if f32 and b32 else "")]
        cells.append(f"{r32 * fps / 1e9:.0f} ({100 * r32 * fps / peak['fp32']:.0f} %)"
                     if r32 else "")
        c32 = rate(exp, "fp32", "compiled")
        if compile_exps:
            cells.append("-" if exp not in compile_exps else
                         f"{_fmt(c32)} ({100 * c32 * fps / peak['fp32']:.0f} %)" if c32
                         else "failed")
        r16 = None
        if "bf16" in precisions:
            r16 = rate(exp, "bf16", "trainer")
            cells += [_fmt(r16),
                      f"{r16 * fps / 1e9:.0f} ({100 * r16 * fps / peak['bf16']:.0f} %)"
                      if r16 else "", f"{r16 / r32:.2f}x" if r16 and r32 else ""]
        lines.append("| " + " | ".join(cells) + " |")
        results[exp] = {"label": label, "batch_size": cfg.train.batch_size,
                        "flop_per_sample": fps, "images": len(data[exp]),
                        "fp32_trainer": r32, "fp32_bare": b32, "fp32_bare_fused": f32,
                        "fp32_bare_compiled": c32,
                        "bf16_trainer": r16}
    notes = [
        f"torch {torch.__version__}, {threads} threads, profile `{args.profile}`, median of "
        f"{args.repeats}, synthetic data. Measured matmul peak (batch 100 x 784 x 500, "
        f"forward + backward shapes): fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s"
        + (f", bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s" if "bf16" in peak else "") + ".",
        "trainer = `autoencoders.train.train` (one epoch, its epoch time; it has no "
        "separate step function, so its data loader was replaced by synthetic images); "
        "bare step = `model.loss(x)` + backward + the experiment's optimiser step "
        "(`train.make_optimizer`: `fused=True`), no trainer; old foreach optimiser = the same "
        "with `foreach=True`, as before (in brackets: vs the bare step); train.compile = "
        "the bare step with the loss under `torch.compile` as `train.compile = true` runs "
        "it (compile not timed).",
        "MFLOP / sample = forward FLOPs (torch.utils.flop_counter; 2 x in x out per linear "
        "layer) x 3 for forward + backward; the conv row counts convolution FLOPs the same "
        "way but is compared with a matmul peak.",
    ]
    for (exp, prec, kind), msg in errors.items():
        notes.append(f"{exp}, {kind}, {prec} failed: {msg}")
    table = "\n".join(lines)
    print(table)
    print()
    for n in notes:
        print(n)
    out = {"rows": results, "peak_flops": peak, "threads": threads, "repeats": args.repeats,
           "profile": args.profile, "table": table, "notes": notes,
           "errors": {**{f"{e}/{p}/{k}": m for (e, p, k), m in errors.items()},
                      **{f"{e}/setup": m for e, m in broken.items()}}}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
