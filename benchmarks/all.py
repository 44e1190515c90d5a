"""Run every benchmark and append a dated section to docs/BENCHMARKS.md.

    python benchmarks/all.py --data-dir ../shared/data [--run RUN] [--repeats 3]
        [--skip-steps] [--skip-metrics] [--skip-compile] [--busy]
        [--steps-seconds 1] [--metrics-scale 0.01] [--busy-seconds 8]

Every run first prints the CPU (model, cores, memory) and its features that decide our
speed (AVX2, AVX-512, AVX-512 BF16, AMX), and labels the section with the machine kind
(:func:`machine_kind`, e.g. "Intel Xeon, AVX-512 + BF16 + AMX" or "AMD EPYC, AVX2 only"):
numbers compare only within one kind, so docs/BENCHMARKS.md keeps a dated section per
machine kind.

Without ``--run``, a ``vae-mnist`` model is trained for 5 epochs first (its weights are
only needed to compare the two likelihood estimators on the same model).

Besides the VAE-vs-pythae table (``train_throughput.py``, ``likelihood.py``) it runs
``train_steps.py`` (training throughput of every shipped model), ``metrics_time.py`` (the
disentanglement metrics; by default at 1 % of their default sizes, with a linear projection:
at ``--metrics-scale 1`` they alone take tens of minutes) and ``compile_trial.py``
(torch.compile vs eager). About 5 to 6 minutes in all on an idle 2-core machine.
``--busy`` adds ``busy_machine.py`` (OMP_WAIT_POLICY, GOMP_SPINCOUNT x threads, alone and
beside a process spinning on one core; about 16 x ``--busy-seconds``).

The section ends with the targets of issue #20, each as measured in this run:

* log p(x), K = 5000, fp32: time per test image, projected to the 10,000 MNIST test
  images, the ratio to pythae 0.1.2's ``get_nll`` on the same weights, and the nats between
  their means;
* VAE and SB-VAE fp32 training steps as % of the measured fp32 matmul peak
  (``train_throughput.py`` and ``train_steps.py``, each against the peak it measured);
* the Higgins (beta-VAE) and FactorVAE metrics at their default sizes: measured with
  ``--metrics-scale 1``, else projected linearly from the scale run (marked so);
* with ``--busy``: the busy-machine table.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import autoencoders  # noqa: E402,F401,I001 - first, as the CLI imports it
import busy_machine  # noqa: E402
import compile_trial  # noqa: E402
import likelihood  # noqa: E402
import metrics_time  # noqa: E402
import sbvae_kl  # noqa: E402
import train_steps  # noqa: E402
import train_throughput  # noqa: E402
import torch  # noqa: E402

from autoencoders.config import load_experiment  # noqa: E402
from autoencoders import devices  # noqa: E402
from autoencoders.devices import ISA_LIMIT_VARIABLES, isa_limits  # noqa: E402
from autoencoders.provenance import cpu_features, hardware, versions  # noqa: E402
from autoencoders.train import train  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nProduced by `make bench` (`benchmarks/all.py`); one dated section "
          "per run, newest last, headed by the machine kind (CPU family and vector units: "
          "AVX2, AVX-512, AVX-512 BF16, AMX). Compare numbers only within one machine kind; "
          "timings need a quiet machine. `make bench-avx2` runs them on the code paths of an "
          "AVX2-only CPU (oneDNN, PyTorch's kernels and MKL capped to AVX2).\n")


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``hardware()``'s first field)."""
    return hardware().split(", ")[0]


def machine_kind(model: str | None = None, features: str | None = None) -> str:
    """A short label for the kind of machine: CPU family and its vector units.

    ``"Intel(R) Xeon(R) Platinum 8480+"`` with AMX gives "Intel Xeon Platinum, AVX-512 +
    BF16 + AMX"; ``"AMD EPYC 7763 64-Core Processor"`` with AVX2 gives "AMD EPYC, AVX2 only".
    """
    model = cpu_model() if model is None else model
    features = cpu_features() if features is None else features
    words = []
    for word in re.sub(r"\((R|TM|tm)\)", "", model).split():
        if any(c.isdigit() for c in word) or word in ("Processor", "CPU", "@"):
            break
        words.append(word)
    family = " ".join(words[:3]) or model or "unknown CPU"
    if "AVX-512" in features.replace("AVX-512 BF16", ""):
        units = "AVX-512" + (" + BF16" if "AVX-512 BF16" in features else "") + (
            " + AMX" if "AMX" in features else "")
    elif "AVX2" in features:
        units = "AVX2 only"
    else:
        units = "no AVX2"
    limits = isa_limits()
    capped = limits and all(v.strip().upper() == "AVX2" for v in limits.values())
    if capped and len(limits) == len(ISA_LIMIT_VARIABLES) and "AVX2" in features:
        # `make bench-avx2`: every library capped to AVX2 -- the code paths of an AVX2-only CPU
        units = "AVX2 only (AVX-512 switched off: " + ", ".join(limits) + ")"
    elif limits:
        units += " (capped: " + " ".join(f"{k}={v}" for k, v in limits.items()) + ")"
    return f"{family}, {units}"


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
    p.add_argument("--busy", action="store_true",
                   help="also run busy_machine.py (alone vs beside a spinning process)")
    p.add_argument("--busy-seconds", type=float, default=8.0,
                   help="busy_machine.py --seconds: length of each of its 16 timings")
    args = p.parse_args()
    t0 = time.perf_counter()
    kind = machine_kind()
    print(f"CPU: {hardware()}\nCPU features: {cpu_features() or 'none of AVX2/AVX-512/AMX'}"
          f"\nmachine kind: {kind}", flush=True)
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
        reps + ["--seconds", str(args.steps_seconds), "--compile", "vae-mnist,sbvae-mnist"])
    kl = None if args.skip_steps else sbvae_kl.main(["--threads", str(torch.get_num_threads())])
    metrics = None if args.skip_metrics else metrics_time.main(
        reps + ["--scale", str(args.metrics_scale)])
    # torch.compile's CPU code is wrong under an ATEN_CPU_CAPABILITY cap below the CPU's
    trial = (None if args.skip_compile or devices.inductor_cap_mismatch()
             else compile_trial.main(reps))
    busy = busy_machine.main(["--seconds", str(args.busy_seconds)]) if args.busy else None
    flags = "".join(f" --{k.replace('_', '-')}" for k in ("skip_steps", "skip_metrics",
                                                           "skip_compile") if getattr(args, k))
    flags += "" if args.skip_steps else f" --steps-seconds {args.steps_seconds:g}"
    flags += "" if args.skip_metrics else f" --metrics-scale {args.metrics_scale:g}"
    flags += f" --busy --busy-seconds {args.busy_seconds:g}" if args.busy else ""
    rates = tp["samples_per_s"]
    lines = [f"## {time.strftime('%Y-%m-%d')} — {kind}", "",
             f"{versions()}.", "",
             f"Machine: {hardware()}; CPU features: "
             f"{cpu_features() or 'none of AVX2/AVX-512/AMX'}. Command: `python "
             f"benchmarks/all.py --repeats {args.repeats} --k {args.k}{flags}`; total "
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
        lines.append(f"| log p(x) agreement, same images and draws, nats | "
                     f"{ll['ours_mean_same_images']:.3f} | | {ll['pythae_mean']:.3f} | "
                     f"paired diff {ll['diff_mean']:+.4f} ± {ll['diff_se']:.4f} "
                     f"({ll['agreement']}) |")
    else:
        lines.append(f"| log p(x), K = {args.k}, ms per test image | "
                     f"{ll['ours_s_per_image'] * 1e3:.1f} | | n/a | |")
    if steps is not None:
        lines += ["", "Training throughput of every shipped model "
                  "(`benchmarks/train_steps.py`):", "", steps["table"], "",
                  *[f"- {n}" for n in steps["notes"]]]
    if kl is not None:
        lines += ["", f"SB-VAE KL term (`benchmarks/sbvae_kl.py`, {kl['threads']} threads): "
                  f"forward + backward over 100 x 49 sticks, series {kl['kl_series_s'] * 1e3:.2f} "
                  f"ms, table {kl['kl_table_s'] * 1e3:.2f} ms "
                  f"({kl['kl_series_s'] / kl['kl_table_s']:.1f}x); largest gradient error "
                  f"against the float64 series (relative to the largest gradient): series "
                  f"{kl['grad_error_series']:.1e}, table {kl['grad_error_table']:.1e}; table "
                  f"built in {kl['table_build_s']:.2f} s; `sbvae-mnist` training step "
                  f"{kl['step_series_s'] * 1e3:.2f} ms with the series, "
                  f"{kl['step_table_s'] * 1e3:.2f} ms with the table "
                  f"({kl['step_series_s'] / kl['step_table_s']:.2f}x)."]
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
    if busy is not None:
        lines += ["", f"Busy machine (`benchmarks/busy_machine.py`: Adam steps of the MNIST "
                  f"VAE in a fresh process, {busy['seconds']:g} s each, alone and beside "
                  f"{busy['competitors']} process(es) spinning on a core):", "",
                  busy["table"]]
    lines += ["", "Targets, as measured in this run:", "",
              *targets(args, tp, ll, steps, metrics)]
    text = DOC.read_text() if DOC.is_file() else HEADER
    DOC.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"appended to {DOC}")


def targets(args, tp: dict, ll: dict, steps: dict | None, metrics: dict | None) -> list[str]:
    """The issue's numbers as Markdown bullets, from the benchmarks' results."""
    out = []
    test_min = ll["ours_test_set_s"] / 60
    line = (f"- log p(x), K = {args.k}, fp32, {ll['threads']} threads: "
            f"{ll['ours_s_per_image'] * 1e3:.1f} ms per image, {test_min:.1f} min projected "
            f"for the {likelihood.TEST_IMAGES:,} test images")
    if "pythae_s_per_image" in ll:
        line += (f"; {ll['speedup']:.2f}x pythae's `get_nll` (target >= 2x); on the same "
                 f"draws pythae - ours = {ll['diff_mean']:+.4f} ± {ll['diff_se']:.4f} nats, "
                 f"max {ll['diff_max']:.4f} ({ll['agreement']}; target within 0.1)")
    out.append(line + ".")
    fps, peak = train_throughput.FLOP_PER_SAMPLE, tp["matmul_peak_flops"]
    out.append(f"- VAE training step, fp32: {100 * tp['samples_per_s']['ours'] * fps / peak:.0f} "
               f"% of the measured matmul peak ({peak / 1e9:.0f} GFLOP/s).")
    row = (steps or {}).get("rows", {}).get("sbvae-mnist")
    if row and row.get("fp32_trainer"):
        sb_peak = steps["peak_flops"]["fp32"]
        out.append(f"- SB-VAE training step, fp32: "
                   f"{100 * row['fp32_trainer'] * row['flop_per_sample'] / sb_peak:.0f} % of "
                   f"the measured matmul peak ({sb_peak / 1e9:.0f} GFLOP/s, "
                   f"`train_steps.py`)"
                   + (f"; the bare step with `train.compile = true`: "
                      f"{100 * row['fp32_bare_compiled'] * row['flop_per_sample'] / sb_peak:.0f}"
                      " %" if row.get("fp32_bare_compiled") else "") + ".")
    else:
        out.append("- SB-VAE training step: not measured (`--skip-steps`, or its row failed).")
    if metrics is None:
        out.append("- Higgins and FactorVAE metrics: not measured (`--skip-metrics`).")
        return out
    scale = metrics["scale"]
    how = "measured" if scale == 1 else f"projected linearly from scale {scale:g}"
    for name, label in (("beta_vae", "Higgins (beta-VAE) metric"),
                        ("factor_vae", "FactorVAE metric")):
        times = [f"{net} {r['total'] / scale:,.0f} s"
                 for key, r in metrics["results"].items()
                 for net, metric in [key.split("/")] if metric == name]
        out.append(f"- {label} at its default sizes ({how}): {', '.join(times) or 'n/a'}.")
    return out


if __name__ == "__main__":
    main()
