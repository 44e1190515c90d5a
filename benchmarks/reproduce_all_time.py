"""Where the time of one ``autoencoders reproduce all`` went, and whether its numbers moved.

    python benchmarks/reproduce_all_time.py RUNS [--before RUNS_BEFORE] [--archives results]

``RUNS`` (and ``RUNS_BEFORE``) are the ``--runs-dir`` of a finished ``reproduce all``: the
experiments are the run folders its ``index.md`` links to. Prints, in Markdown:

* the CPU (model, cores, features) the run recorded in its ``provenance.json`` files;
* per experiment: wall seconds (``provenance.json``), of which training (the last
  ``time`` of each ``metrics.jsonl``: epochs, validation and checkpoints, without set-up)
  and evaluation (each ``eval.json``'s ``eval_seconds``), the rest (data, set-up, figures,
  report), the training precision; with ``--before``, the same experiment's wall seconds
  there and the ratio;
* the totals: the index's wall time and the one-thread work (the experiments' wall
  seconds summed; with ``--jobs 2`` the wall time is about half of it);
* with ``--write-seconds FILE`` (``src/autoencoders/experiments/seconds.json``): the
  experiments' wall seconds, under their profile, for ``reproduce all --jobs`` to start the
  longest first on a machine with no earlier run (only their order matters);
* with ``--before``: every headline test number (``eval.json`` keys below) of every run
  folder the two share, side by side, with the standard deviation over the seeds of the
  archived ``results/<experiment>-quick.json`` where there is one, so that a change can be
  judged against seed noise.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

KEYS = ("test/elbo", "test/log_px", "test/error", "test/logreg_error", "test/knn_error_k5",
        "test/knn_error_sample_k5", "test/beta_vae_metric", "test/factor_vae_metric",
        "test/mig", "test/loss")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def index_runs(runs: Path) -> tuple[dict[str, Path], float | None]:
    """Experiment name -> run folder, from ``index.md``; and its total wall minutes."""
    text = (runs / "index.md").read_text()
    folders = {}
    for rel in re.findall(r"\[full report\]\(([^)]+)/report\.md\)", text):
        folders[rel.split("/")[0]] = runs / rel
    m = re.search(r"Total wall time: ([\d.]+) min", text)
    return folders, float(m.group(1)) if m else None


def timing(run: Path) -> dict:
    """Wall, training and evaluation seconds of one experiment's run folder."""
    prov = _json(run / "provenance.json")
    train = 0.0
    for m in run.rglob("metrics.jsonl"):
        times = [json.loads(line).get("time", 0.0) for line in m.read_text().splitlines()
                 if line.strip()]
        train += max(times, default=0.0)
    evaluation = sum(_json(e).get("eval_seconds", 0.0) for e in run.rglob("eval.json"))
    wall = prov.get("wall_seconds", 0.0)
    precision = prov.get("precision") or _json(run / "config.json").get(
        "train", {}).get("precision", "?")
    return {"wall": wall, "train": train, "eval": evaluation,
            "rest": wall - train - evaluation, "precision": precision,
            "hardware": prov.get("hardware", "?"), "features": prov.get("cpu_features", "?")}


def numbers(run: Path) -> dict[tuple[str, str], float]:
    """(arm, key) -> value for every ``eval.json`` under ``run`` (arm: its sub-folder)."""
    out = {}
    for e in sorted(run.rglob("eval.json")):
        arm = str(e.parent.relative_to(run)) if e.parent != run else ""
        ev = _json(e)
        for k in KEYS:
            if isinstance(ev.get(k), int | float):
                out[(arm, k)] = float(ev[k])
    return out


def seed_sd(archives: Path, experiment: str) -> dict[tuple[str, str], tuple[float, int]]:
    """(arm label, key) -> (standard deviation over seeds, seeds) of an archived quick run."""
    data = _json(archives / f"{experiment}-quick.json")
    values: dict[tuple[str, str], list[float]] = {}
    for r in data.get("records", []):
        for k, v in (r.get("eval") or {}).items():
            if k in KEYS and isinstance(v, int | float):
                values.setdefault((r.get("label") or "", k), []).append(float(v))
    return {key: (statistics.stdev(v), len(v)) for key, v in values.items() if len(v) > 1}


def write_seconds(path: Path, runs: dict[str, Path]) -> None:
    """Merge the runs' wall seconds into ``path`` under their profile, with the machine
    and commit they came from."""
    table = _json(path) or {}
    first = next(iter(runs.values()))
    prov = _json(first / "provenance.json")
    profile = _json(first / "config.json").get("experiment", {}).get("profile", "quick")
    table["about"] = ("One-thread wall seconds of each experiment of one `reproduce all` "
                      "run, per profile: `reproduce all --jobs N` starts the longest first "
                      "when its runs folder holds no earlier run. Only their order matters. "
                      "Written by benchmarks/reproduce_all_time.py RUNS --write-seconds.")
    table.setdefault("source", {})[profile] = {
        "machine": f"{prov.get('hardware', '?')}; {prov.get('cpu_features', '?')}",
        "git": prov.get("commit", "?")}
    table[profile] = {name: round(timing(run)["wall"], 1) for name, run in sorted(runs.items())}
    path.write_text(json.dumps(table, indent=2) + "\n")


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--before", type=Path, default=None)
    p.add_argument("--archives", type=Path, default=Path("results"))
    p.add_argument("--write-seconds", type=Path, default=None, metavar="FILE")
    a = p.parse_args(argv)
    after, total = index_runs(a.runs)
    if a.write_seconds:
        write_seconds(a.write_seconds, after)
    before, total_before = index_runs(a.before) if a.before else ({}, None)
    rows = {name: timing(run) for name, run in after.items()}
    first = next(iter(rows.values()))
    lines = [f"Machine: {first['hardware']}; CPU features: {first['features']}.", ""]
    head = "| experiment | wall, s | training, s | evaluation, s | rest, s | precision |"
    rule = "|---|---|---|---|---|---|"
    if before:
        head += " before: wall, s | after / before |"
        rule += "---|---|"
    lines += [head, rule]
    work = work_before = 0.0
    for name, t in sorted(rows.items(), key=lambda kv: -kv[1]["wall"]):
        work += t["wall"]
        row = (f"| {name} | {t['wall']:.0f} | {t['train']:.0f} | {t['eval']:.0f} | "
               f"{t['rest']:.0f} | {t['precision']} |")
        if before:
            w = timing(before[name])["wall"] if name in before else None
            work_before += w or 0.0
            row += f" {w:.0f} | {t['wall'] / w:.2f} |" if w else " | |"
        lines.append(row)
    lines.append("")
    lines.append(f"Wall time (index.md): {total} min; one-thread work: {work / 60:.1f} min"
                 + (f" (before: {total_before} min wall, {work_before / 60:.1f} min of work)"
                    if before else "") + ".")
    if before:
        same, changed = 0, []
        for name in sorted(set(after) & set(before)):
            new, old = numbers(after[name]), numbers(before[name])
            sds = seed_sd(a.archives, name)
            for (arm, k) in sorted(set(new) & set(old)):
                diff = new[(arm, k)] - old[(arm, k)]
                if abs(diff) <= 1e-9 * max(1.0, abs(old[(arm, k)])):
                    same += 1
                    continue
                sd = sds.get((arm, k))
                noise = f"{sd[0]:.3g} ({sd[1]} seeds)" if sd else "—"
                changed.append(f"| {name} | {arm or '—'} | {k} | {old[(arm, k)]:.4g} | "
                               f"{new[(arm, k)]:.4g} | {diff:+.3g} | {noise} |")
        lines += ["", f"Headline test numbers of the run folders both hold: {same} of "
                  f"{same + len(changed)} identical (to 1e-9 relative)"
                  + (", the others:" if changed else ".")]
        if changed:
            lines += ["", "| experiment | arm | number | before | after | after - before | "
                      "sd over the archived seeds |", "|---|---|---|---|---|---|---|",
                      *changed]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
