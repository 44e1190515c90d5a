"""Run every benchmark and append a dated section to docs/BENCHMARKS.md.

    python benchmarks/all.py --data-dir ../shared/data [--run RUN] [--repeats 3]

Without ``--run``, a ``vae-mnist`` model is trained for 5 epochs first (its weights are
only needed to compare the two likelihood estimators on the same model).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import likelihood  # noqa: E402
import train_throughput  # noqa: E402

from autoencoders.config import load_experiment  # noqa: E402
from autoencoders.report import hardware, versions  # noqa: E402
from autoencoders.train import train  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--k", type=int, default=5000)
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
    rates = tp["samples_per_s"]
    lines = [f"## {time.strftime('%Y-%m-%d')} — {versions()}", "",
             f"Machine: {hardware()}. Command: `python benchmarks/all.py "
             f"--repeats {args.repeats} --k {args.k}`; total {time.perf_counter() - t0:.0f} s.",
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
    text = DOC.read_text() if DOC.is_file() else (
        "# Benchmarks\n\nProduced by `make bench` (`benchmarks/all.py`); one section per "
        "run, newest last. Timings need a quiet machine.\n")
    DOC.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
