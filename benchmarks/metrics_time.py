"""Wall time of the disentanglement metrics, and where it goes.

The three metrics of ``autoencoders.evaluation.disentanglement`` (``beta_vae_metric``,
``factor_vae_metric``, ``mig``) at the sizes of ``EvalConfig``'s defaults (10,000 train /
5,000 eval votes of L = 64, 10,000 points for the variance estimate and for MIG), on the
procedural dSprites generator (``DSprites()``, as ``dsprites-generated`` uses), called as
``evaluation.disentanglement._all_metrics`` calls them (same seed), with the representation
(posterior mean, ``representation(model)``) of

(a) the FC beta-VAE network of ``betavae-dsprites`` and
(b) the conv network of ``betavae-dsprites-capacity``,

both at their initial weights (the time does not depend on training; the codes are
multiplied by a constant so that FactorVAE's pruning keeps every dimension, as for a trained
model: see :func:`rescaled`), fp32. Each call's
time is split into:

* render: ``sample_observations_from_factors`` (drawing the images, incl. its cache);
* encode: the representation function;
* scorer: the metric's scorer on arrays (``score_beta_vae``: the logistic-regression fit;
  ``score_factor_vae``: the majority vote; ``score_mig``: histograms + mutual information);
* other: the rest (drawing factors, pair keys and the exclusion of training pairs, |z1 - z2|,
  variances), i.e. total - render - encode - scorer.

The in-process render cache (``dsprites._BLOCKS``) is emptied before every call, so each is
timed as the first evaluation in a process meets it.

With the full grid (``--grid``; past ``FULL_GRID_AFTER`` images, as the evaluator decides)
the three metrics of a network share one table of codes per repeat (``GridCodes``: each
distinct image encoded once), as ``_all_metrics`` and the three evaluators of one model do,
in the order beta_vae, factor_vae, mig: a metric's time depends on those before it, and
``images`` counts the images it looked up and encoded (without the table: every draw).
``--memo never`` encodes every draw (the path before the table), for comparison.

When encoding is the largest part for a network (``--bf16 auto``), the same is also timed
with the representation under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (report
only: src is unchanged), and the scores of the two are printed side by side.

    python benchmarks/metrics_time.py                  # default sizes: tens of minutes
    python benchmarks/metrics_time.py --scale 0.01 --repeats 3
    python benchmarks/metrics_time.py --quick          # tiny sizes: checks that it runs

With ``--scale`` < 1 every vote and point count is multiplied by it, and the table also
shows total / scale, a linear projection to the default sizes (rendering, encoding and the
vote bookkeeping are linear in the number of images; the classifier fit is not, nor is the
number of distinct images the table encodes, so measure
at ``--scale 1`` for the real figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

import autoencoders.data.dsprites as dsprites
import autoencoders.evaluation.disentanglement as D
from autoencoders.config import EvalConfig, load_experiment
from autoencoders.provenance import cpu_features, hardware
from autoencoders.registry import build_model

NETWORKS = [("FC", "betavae-dsprites"), ("conv", "betavae-dsprites-capacity")]
METRICS = ("beta_vae", "factor_vae", "mig")
PARTS = ("render", "encode", "scorer", "other")
SCORERS = {"beta_vae": "score_beta_vae", "factor_vae": "score_factor_vae", "mig": "score_mig"}


class TimedGroundTruth:
    """The ground-truth object with its image drawing timed into ``acc["render"]``."""

    def __init__(self, gt, acc: dict):
        self._gt, self._acc = gt, acc

    def __getattr__(self, name):
        return getattr(self._gt, name)

    def sample_observations_from_factors(self, factors, generator=None):
        t0 = time.perf_counter()
        x = self._gt.sample_observations_from_factors(factors, generator)
        self._acc["render"] += time.perf_counter() - t0
        self._acc["images"] += len(factors)
        return x


def timed_represent(represent, acc: dict):
    def f(x):
        t0 = time.perf_counter()
        z = represent(x)
        acc["encode"] += time.perf_counter() - t0
        return z
    return f


def rescaled(represent, gt, n: int = 1000):
    """``represent`` times a constant that gives its codes a mean standard deviation of 1.

    At initial weights every code dimension varies by less than FactorVAE's pruning
    threshold (0.05), so ``factor_vae_metric`` would stop after its variance estimate and
    time nothing of its votes; a trained model's active dimensions vary by ~1. A constant
    factor changes no cost. The call also warms the network up (first-call allocations).
    """
    x = gt.sample_observations_from_factors(gt.sample_factors(n, torch.Generator()
                                                              .manual_seed(1)))
    c = float(1.0 / represent(x).std(0).mean())

    def f(x):
        return represent(x) * c
    return f


def bf16_represent(represent):
    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return represent(x)
    return f


@contextmanager
def timed_scorers(acc: dict):
    """Time the module's scorers (the metrics look them up as globals at call time)."""
    real = {name: getattr(D, name) for name in SCORERS.values()}

    def wrap(fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            acc["scorer"] += time.perf_counter() - t0
            return out
        return timed

    for name, fn in real.items():
        setattr(D, name, wrap(fn))
    try:
        yield
    finally:
        for name, fn in real.items():
            setattr(D, name, fn)


def sizes(scale: float) -> dict:
    """EvalConfig's defaults (what ``eval.*`` is unless an experiment sets it), scaled."""
    e = EvalConfig()

    def s(n):
        return max(2, round(n * scale))

    return {"votes_batch": e.votes_batch, "votes_train": s(e.votes_train),
            "votes_eval": s(e.votes_eval), "mig_points": s(e.mig_points),
            "variance_points": s(e.variance_points)}


def run_metric(metric: str, gt, represent, n: dict, table=None) -> tuple[dict, float]:
    """One metric as ``_all_metrics`` calls it, with ``table`` (a ``GridCodes`` shared by the
    metrics of a network, or None: every draw encoded); returns (parts and score, total
    seconds)."""
    acc = {"render": 0.0, "encode": 0.0, "scorer": 0.0, "images": 0}
    tgt, rep = TimedGroundTruth(gt, acc), timed_represent(represent, acc)
    if table is not None:  # its lookups and encodings are this metric's from here on
        table.ground_truth, table.represent = tgt, rep
    votes = dict(batch_size=n["votes_batch"], num_train=n["votes_train"],
                 num_eval=n["votes_eval"])
    gen = torch.Generator().manual_seed(D.EVAL_SEED)
    blocks = getattr(dsprites, "_BLOCKS", None)
    if blocks is not None:
        blocks.clear()  # cold: as the first evaluation in a process
    with timed_scorers(acc):
        t0 = time.perf_counter()
        if metric == "beta_vae":
            r = D.beta_vae_metric(tgt, rep, generator=gen, codes=table, **votes)
            score = r["eval_accuracy"]
        elif metric == "factor_vae":
            r = D.factor_vae_metric(tgt, rep, num_variance_estimate=n["variance_points"],
                                    generator=gen, codes=table, **votes)
            score = r["eval_accuracy"]
        else:
            r = D.mig(tgt, rep, num_points=n["mig_points"], generator=gen, codes=table)
            score = r["mig"]
        total = time.perf_counter() - t0
    acc["other"] = total - acc["render"] - acc["encode"] - acc["scorer"]
    acc["score"] = score
    return acc, total


def network(experiment: str, profile: str):
    cfg = load_experiment(experiment, profile)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.train.seed)  # the initial weights a run of it starts from
        model = build_model(cfg.model, dsprites.DSprites.image_shape)
    return model.eval()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every vote and point count (1: EvalConfig's defaults)")
    p.add_argument("--repeats", type=int, default=1,
                   help="median of this many runs (each is minutes long at --scale 1)")
    p.add_argument("--bf16", default="auto", choices=["auto", "always", "never"],
                   help="also time a bf16-autocast representation (auto: when encoding is "
                        "the largest part for that network)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--only", default="", help="comma-separated: FC, conv, beta_vae, ...")
    p.add_argument("--quick", action="store_true", help="--scale 0.002: checks that it runs")
    p.add_argument("--grid", default="auto", choices=["auto", "always", "never"],
                   help="images from the cached full grid (auto: when the evaluator would)")
    p.add_argument("--memo", default="auto", choices=["auto", "never"],
                   help="one table of codes shared by a network's metrics (auto: when the "
                        "evaluator would, i.e. on the full grid; never: encode every draw)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    print(f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}")
    if args.quick:
        args.scale, args.repeats = 0.002, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    only = set(filter(None, args.only.split(",")))
    nets = [nw for nw in NETWORKS if not (only & {"FC", "conv"}) or nw[0] in only]
    metrics = [m for m in METRICS if not (only & set(METRICS)) or m in only]
    n = sizes(args.scale)
    # as the evaluator decides (evaluation.disentanglement._ground_truth): past
    # FULL_GRID_AFTER images, look them up in the cached full grid instead of drawing them
    grid = args.grid == "always" or (args.grid == "auto" and D.wants_full_grid(
        n["votes_batch"], n["votes_train"], n["votes_eval"]))
    if grid:
        t0 = time.perf_counter()
        gt = dsprites.DSpritesGenerated.ground_truth(full_grid=True)
        print(f"full grid of 737,280 images: {time.perf_counter() - t0:.1f} s to open or draw "
              "(drawn once per machine, then memory-mapped from the user cache)")
    else:
        gt = dsprites.DSprites()
    results: dict = {}

    memo = args.memo == "auto" and isinstance(gt, dsprites.DSprites) and gt.images is not None

    def measure(label: str, represent) -> None:
        # repeats outer, metrics inner: each repeat starts from an empty table, as an
        # evaluation does (the size check of D.shared_codes is left out: these codes are narrow)
        by_metric: dict = {m: [] for m in metrics}
        for _ in range(args.repeats):
            table = D.GridCodes(gt, represent) if memo else None
            for m in metrics:
                by_metric[m].append(run_metric(m, gt, represent, n, table))
        for m in metrics:
            runs = by_metric[m]
            totals = [t for _, t in runs]
            med = statistics.median(totals)
            parts, _ = min(runs, key=lambda r: abs(r[1] - med))  # the median run's split
            results[(label, m)] = {"total": med, "totals": totals, **parts}
            print(f"  {label:>10s} {m:>10s}: {med:8.2f} s  " + "  ".join(
                f"{k} {parts[k]:.2f}" for k in PARTS), flush=True)

    bf16_done = []
    import sklearn.linear_model  # noqa: F401  (imports are not the metrics' time)
    import sklearn.metrics  # noqa: F401

    for name, exp in nets:
        model = network(exp, args.profile)
        measure(name, rescaled(D.representation(model), gt))
        enc = sum(results[(name, m)]["encode"] for m in metrics)
        largest = max(PARTS, key=lambda k: sum(results[(name, m)][k] for m in metrics))
        if args.bf16 == "always" or (args.bf16 == "auto" and largest == "encode"):
            measure(f"{name} bf16", rescaled(bf16_represent(D.representation(model)), gt))
            bf16_done.append(name)
        elif args.bf16 == "auto":
            print(f"  {name}: encoding ({enc:.1f} s) is not the largest part ({largest}); "
                  "bf16 variant not timed (--bf16 always to time it)")

    cap = getattr(dsprites, "_BLOCKS_MAX_BYTES", 0) * 8 // (64 * 64)
    head = ["network", "metric", "images", "total, s", "render, s", "encode, s", "scorer, s",
            "other, s", "score"]
    if args.scale != 1:
        head.insert(4, "total / scale, s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (label, m), r in results.items():
        score = f"{r['score']:.3f}" if m == "mig" else f"{r['score']:.1f} %"
        cells = [label, m, f"{r['images']:,}", f"{r['total']:.1f}",
                 *(f"{r[k]:.1f} ({100 * r[k] / r['total']:.0f} %)" for k in PARTS), score]
        if args.scale != 1:
            cells.insert(4, f"{r['total'] / args.scale:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    notes = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; sizes "
        f"{'(EvalConfig defaults)' if args.scale == 1 else f'(defaults x {args.scale})'}: "
        f"{n['votes_train']:,} train / {n['votes_eval']:,} eval votes of L = "
        f"{n['votes_batch']}, {n['variance_points']:,} variance points, {n['mig_points']:,} "
        f"MIG points; median of {args.repeats}; networks at initial weights, codes rescaled "
        f"to unit spread (else FactorVAE prunes every dimension); "
        + ("images looked up in the cached full grid (render = the lookup)"
           + ("; one table of codes per network and repeat, shared by its metrics in this "
              "order (images: those encoded)." if memo else "; every draw encoded.")
           if grid else f"render cache emptied before each call (it holds {cap:,} images)."),
        f"CPU: {hardware()}; {cpu_features() or 'none of AVX2/AVX-512'}.",
        "score: eval accuracy (beta_vae, factor_vae) or MIG of the untrained network's "
        "rescaled codes (a check that the rows computed the same thing, not a result)"
        + ("; 'bf16' rows encode under torch.autocast(bfloat16) (report only)."
           if bf16_done else "."),
    ]
    print()
    print(table)
    print()
    for line in notes:
        print(line)
    out = {"sizes": n, "scale": args.scale, "repeats": args.repeats, "memo": memo,
           "threads": torch.get_num_threads(), "table": table, "notes": notes,
           "results": {f"{k[0]}/{k[1]}": v for k, v in results.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
