"""Run every benchmark and append a dated section to docs/BENCHMARKS.md.

    python benchmarks/all.py --data-dir ../shared/data [--run RUN] [--repeats 3]
        [--skip-steps] [--skip-metrics] [--skip-compile]
        [--steps-seconds 1] [--metrics-scale 0.01]

Without ``--run``, a ``vae-mnist`` model is trained for 5 epochs first (its weights are
only needed to compare the two likelihood estimators on the same model).

Besides the VAE-vs-pythae table (``train_throughput.py``, ``likelihood.py``) it runs
``train_steps.py`` (training throughput of every shipped model), ``metrics_time.py`` (the
disentanglement metrics; by default at 1 % of their default sizes, with a linear projection:
at ``--metrics-scale 1`` they alone take tens of minutes) and ``compile_trial.py``
(torch.compile vs eager). About 5 to 6 minutes in all on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import compile_trial  # noqa: E402
import likelihood  # noqa: E402
import metrics_time  # noqa: E402
import train_steps  # noqa: E402
import train_throughput  # noqa: E402

from autoencoders.config import load_experiment  # noqa: E402
from autoencoders.provenance import hardware, versions  # noqa: E402
from autoencoders.train import train  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--skip-steps", action="store_true", help="skip train_steps.py")
    p.add_argument("--skip-metrics", action="store_true", help="skip metrics_time.py")
    p.add_argument("--skip-compile", action="store_true", help="skip compile_trial.py")
    p.add_argument("--steps-seconds", type=float, default=1.0,
                   help="train_steps.py --seconds: length of each timed epoch")
    p.add_argument("--metrics-scale", type=float, default=0.01,
                   help="metrics_time.py --scale (1: the metrics' default sizes, ~1 hour)")
    args = p.parse_args()
    t0 = time.perf_counter()
    tp = train_throughput.main(["--repeats", str(args.repeats)] +
                               (["--data-dir", args.data_dir] if args.data_dir else []))
    with tempfile.TemporaryDirectory() as d:
        run = args.run
        if run is None:
            cfg = load_experiment("vae-mnist", "quick", {"train.epochs": 5,
                                                         "data.data_dir": args.data_dir})
            run = str(train(cfg, runs_dir=d, progress=False, log_epochs=False).path)
        ll = likelihood.main([run, "--k", str(args.k)])
    reps = ["--repeats", str(args.repeats)]
    steps = None if args.skip_steps else train_steps.main(
        reps + ["--seconds", str(args.steps_seconds)])
    metrics = None if args.skip_metrics else metrics_time.main(
        reps + ["--scale", str(args.metrics_scale)])
    trial = None if args.skip_compile else compile_trial.main(reps)
    flags = "".join(f" --{k.replace('_', '-')}" for k in ("skip_steps", "skip_metrics",
                                                           "skip_compile") if getattr(args, k))
    flags += "" if args.skip_steps else f" --steps-seconds {args.steps_seconds:g}"
    flags += "" if args.skip_metrics else f" --metrics-scale {args.metrics_scale:g}"
    rates = tp["samples_per_s"]
    lines = [f"## {time.strftime('%Y-%m-%d')} — {versions()}", "",
             f"Machine: {hardware()}. Command: `python benchmarks/all.py "
             f"--repeats {args.repeats} --k {args.k}{flags}`; total "
             f"{time.perf_counter() - t0:.0f} s.",
             "", "| benchmark | ours | plain eager | pythae | ours vs pythae |",
             "|---|---|---|---|---|"]
    py = rates.get("pythae")
    ratio = f"{rates['ours'] / py:.2f}x" if py else "n/a"
    lines.append(
        f"| VAE training, samples/s (median of {args.repeats}) | {rates['ours']:,.0f} | "
        f"{rates['eager']:,.0f} | {f'{py:,.0f}' if py else 'n/a'} | "
        f"{ratio} |")
    peak = tp["matmul_peak_flops"]
    bf = rates.get("ours-bf16")
    bf_ratio = f"{bf / py:.2f}x" if (py and bf) else "n/a"
    lines.append(f"| VAE training, train.precision = bf16 (opt-in), samples/s | "
                 f"{bf:,.0f} | | {f'{py:,.0f}' if py else 'n/a'} | {bf_ratio} |")
    fps = train_throughput.FLOP_PER_SAMPLE

    def pct(rate):
        return f"{100 * rate * fps / peak:.0f} %" if rate else "n/a"

    lines.append(f"| training, % of measured matmul peak ({peak / 1e9:.0f} GFLOP/s) | "
                 f"{pct(rates['ours'])} | {pct(rates['eager'])} | {pct(py)} | |")
    if "pythae_s_per_image" in ll:
        lines.append(
            f"| log p(x), K = {args.k}, ms per test image | {ll['ours_s_per_image'] * 1e3:.1f} |"
            f" | {ll['pythae_s_per_image'] * 1e3:.1f} | {ll['speedup']:.2f}x |")
        lines.append(
            f"| log p(x), K = {args.k}, bf16 decoder (opt-in), ms per test image | "
            f"{ll['bf16_s_per_image'] * 1e3:.1f} | | {ll['pythae_s_per_image'] * 1e3:.1f} | "
            f"{ll['speedup_bf16']:.2f}x |")
        lines.append(f"| bf16 vs fp32 log p(x), same draws: mean / max difference, nats | "
                     f"{ll['bf16_mean_diff']:+.4f} / {ll['bf16_max_diff']:.4f} | | | |")
        lines.append(f"| log p(x) agreement, mean over the same images, nats | "
                     f"{ll['ours_mean_same_images']:.3f} | | {ll['pythae_mean']:.3f} | "
                     f"diff {abs(ll['ours_mean_same_images'] - ll['pythae_mean']):.3f} |")
    else:
        lines.append(f"| log p(x), K = {args.k}, ms per test image | "
                     f"{ll['ours_s_per_image'] * 1e3:.1f} | | n/a | |")
    if steps is not None:
        lines += ["", "Training throughput of every shipped model "
                  "(`benchmarks/train_steps.py`):", "", steps["table"], "",
                  *[f"- {n}" for n in steps["notes"]]]
    if metrics is not None:
        lines += ["", "Disentanglement metrics, wall time and where it goes "
                  "(`benchmarks/metrics_time.py`):", "", metrics["table"], "",
                  *[f"- {n}" for n in metrics["notes"]]]
    if trial is not None:
        lines += ["", f"torch.compile trial (`benchmarks/compile_trial.py`, one epoch of "
                  f"{trial['n']:,} random binary images, median of {trial['repeats']}; "
                  f"C++ compiler: {trial['compilers'].get('g++') or 'none'}):", "",
                  trial["table"]]
        lines += [f"- torch.compile failed for {what}: {msg}"
                  for what, msg in trial["errors"].items()]
    text = DOC.read_text() if DOC.is_file() else (
        "# Benchmarks\n\nProduced by `make bench` (`benchmarks/all.py`); one section per "
        "run, newest last. Timings need a quiet machine.\n")
    DOC.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
