"""Run folder -> ``report.md``: figures inline, our numbers beside the paper's, the command,
wall time, hardware and library versions.

Reference numbers come from the experiment's ``[reference]`` table; each entry is either a
number or ``{value = ..., source = "..."}``, keyed like ``eval.json`` (``test/elbo``,
``test/log_px``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .config import reference_entry
from .provenance import hardware, training_precision, versions
from .registry import FIGURES, MODELS, find_output
from .runs import Run, atomic_write_text, headline, holds_lock


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return "—" if v is None else str(v)


def table_keys(model_classes: list[type], evals: list[dict], refs: list[dict]
               ) -> tuple[list[str], dict[str, str]]:
    """The keys a table of numbers shows and their labels: every ``eval.json`` or
    reference key that an output description (``registry.find_output``) puts in tables, in
    its order (core numbers, the model's loss terms, each evaluator's outputs), then the
    reference keys nothing describes."""
    seen = list(dict.fromkeys([k for ev in evals for k in ev] + [k for r in refs for k in r]))
    ranked, labels = [], {}
    for k in seen:
        found = next((f for cls in model_classes for f in [find_output(k, cls)] if f), None)
        if found is not None and found[2]:
            ranked.append((found[0], seen.index(k), k))
            labels[k] = found[1]
    keys = [k for *_, k in sorted(ranked)]
    keys += [k for r in refs for k in r if k not in labels and k not in keys]
    return list(dict.fromkeys(keys)), labels


def numbers_table(run: Run) -> list[str]:
    ev = run.eval_results()
    ref = run.config.reference
    keys, labels = table_keys([MODELS[run.config.model_name]], [ev], [ref])
    lines = ["| quantity | ours | paper | paper's source |", "|---|---|---|---|"]
    for k in keys:
        value, source, _ = reference_entry(ref.get(k))
        ours = _fmt(ev.get(k))
        if k == "test/log_px" and k in ev:
            ours += f" ± {ev.get('test/log_px_sem', 0):.2f} (K={ev['iw_samples']}, " \
                    f"{ev['iw_examples']} examples)"
        lines.append(f"| {labels.get(k, k)} | {ours} | {_fmt(value)} | {source} |")
    return lines


def training_summary(run: Run) -> list[str]:
    rows = run.metrics()
    if not rows:
        return ["(no training metrics)"]
    last = rows[-1]
    rate = last["samples"] / last["time"] if last.get("time") else float("nan")
    tc = run.config.train
    n = last["epoch"]
    out = [
        f"- {n} epoch{'' if n == 1 else 's'}, {last['samples']:,} training samples, "
        f"{last['time']:.0f} s of training ({rate:,.0f} samples/s); optimiser {tc.optimizer} "
        f"lr {tc.lr}, batch {tc.batch_size}, weight decay {tc.weight_decay}, seed {tc.seed}.",
    ]
    finals = ", ".join(f"{k} {v:.2f}" for k, v in headline(last).items())
    out.append(f"- last epoch: {finals}.")
    note = run.stopped_note()
    if note:
        out.append(f"- **training did not finish**: {note.replace(f'{run.path} ', '', 1)}; "
                   "the numbers are those of its last checkpoint.")
    return out


def md_text(text: str) -> str:
    """User text (an experiment's name, paper, description, a label) as Markdown that
    cannot make HTML, links, code spans or table cells (emphasis marks are left alone)."""
    out = str(text).replace("\\", "\\\\")
    for c in "|[]`":
        out = out.replace(c, "\\" + c)
    return out.replace("<", "&lt;").replace(">", "&gt;")


def md_code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it contains."""
    text = str(text).replace("\n", " ")
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(r) for r in re.findall("`+", text)) + 1)
    return f"{fence} {text} {fence}"


@holds_lock
def write_report(run: Run, command: str = "", wall_seconds: float | None = None) -> Path:
    """Write ``<run>/report.md`` and return its path."""
    cfg = run.config
    ev = run.eval_results()
    lines = [f"# {md_text(cfg.name)}", "", f"**Paper:** {md_text(cfg.paper)}  ",
             f"**Profile:** {md_code(cfg.profile)}", ""]
    if cfg.description:
        lines += [md_text(cfg.description), ""]
    lines += ["## Numbers", "", *numbers_table(run), ""]
    if ev.get("eval_seconds") is not None:
        lines.append(f"Evaluation took {ev['eval_seconds']:.0f} s on {ev.get('n_test')} test "
                     "examples.")
        lines.append("")
    lines += ["## Training", "", *training_summary(run), ""]
    figs = sorted((run.path / "figures").glob("*.png"))
    if figs:
        lines += ["## Figures", ""]
        for f in figs:
            about = FIGURES[f.stem].description if f.stem in FIGURES else ""
            lines += [f"**{f.stem}**: {about}", "",
                      f"![{f.stem}](figures/{f.name})", ""]
    lines += _provenance(command, wall_seconds, run)
    path = run.path / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


@holds_lock
def write_sweep_report(parent: Run, children: list[tuple[str, Run]], command: str = "",
                       wall_seconds: float | None = None) -> Path:
    """One report for a sweep: a row per run with our numbers and the paper's beside them,
    the overlaid curves, and links to each run's own report."""
    cfg = parent.config
    lines = [f"# {md_text(cfg.name)}", "", f"**Paper:** {md_text(cfg.paper)}  ",
             f"**Profile:** {md_code(cfg.profile)}", ""]
    if cfg.description:
        lines += [md_text(cfg.description), ""]
    evals = [(label, child.eval_results(), child.config.reference) for label, child in children]
    classes = [MODELS[child.config.model_name] for _, child in children]
    keys, labels = table_keys(classes, [ev for _, ev, _ in evals], [ref for *_, ref in evals])
    keys = [k for k in keys if k not in ("test/loss", "test/rec", "test/kl")] or keys
    head = " | ".join(f"{labels.get(k, k)} (paper)" for k in keys)
    lines += ["## Numbers", "", f"| run | {head} | budget | train s |",
              "|---|" + "---|" * (len(keys) + 2)]
    for (label, child), (_, ev, ref) in zip(children, evals, strict=True):
        rows = child.metrics()
        cells = []
        for k in keys:
            value, _, _ = reference_entry(ref.get(k))
            cells.append(f"{_fmt(ev.get(k))} ({_fmt(value)})")
        t = rows[-1]["time"] if rows else None
        budget = (f"{rows[-1]['epoch']} epochs, {rows[-1]['samples']:,} samples"
                  if rows else "—")
        link = f"{quote(label)}/report.md"  # spaces as %20: still a link once prefixed
        lines.append(f"| [{md_text(label)}]({link}) | {' | '.join(cells)} | {budget} | "
                     f"{_fmt(t)} |")
    lines += _selection_rows(cfg, evals, keys, labels)
    sources = sorted({reference_entry(e)[1] for _, _, ref in evals for e in ref.values()}
                     - {""})
    if sources:
        lines += ["", "Paper's numbers: " + "; ".join(sources) + "."]
    if any(ev.get("iw_samples") for _, ev, _ in evals):
        ks = sorted({ev.get("iw_samples") for _, ev, _ in evals if ev.get("iw_samples")})
        lines += ["", f"log p(x): importance sampling with K = {', '.join(map(str, ks))}."]
    lines += _baselines_table(evals)
    lines += ["", "## Figures", ""]
    for f in sorted((parent.path / "figures").glob("*.png")):
        lines += [f"![{f.stem}](figures/{f.name})", ""]
    for label, child in children:  # each run's latent traversals, when drawn
        if (child.path / "figures" / "traversals.png").is_file():
            lines += [f"**traversals, {md_text(label)}**", "",
                      f"![traversals {md_text(label)}]({quote(label)}/figures/traversals.png)",
                      ""]
    lines += _provenance(command, wall_seconds, parent)
    path = parent.path / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _selection_rows(cfg: Any, evals: list[tuple[str, dict, dict]], keys: list[str],
                    labels: dict[str, str]) -> list[str]:
    """The sweep's ``[selection]``: which arm its validation number chose, that arm's
    numbers beside the paper's for the selection's label, and the validation numbers it
    was chosen on."""
    sel = cfg.selection
    values = {label: ev[sel.key] for label, ev, _ in evals if sel and sel.key in ev}
    if sel is None or not all(a in values for a in sel.among):
        return []
    best = sel.choose(values)
    ev = next(ev for label, ev, _ in evals if label == best)
    ref = cfg.reference.get(sel.label, {})
    cells = " | ".join(f"{_fmt(ev.get(k))} ({_fmt(reference_entry(ref.get(k))[0])})" for k in keys)
    tried = ", ".join(f"{md_text(a)} {_fmt(values[a])}" for a in sel.among)
    head = " | ".join(f"{labels.get(k, k)} (paper)" for k in keys)
    return ["", f"**{md_text(sel.label)}** = {md_text(best)}, the arm with the {sel.better} "
            f"{md_code(sel.key)} among {tried}; the test numbers of the arms not chosen are "
            "shown for reference, not as results.", "", f"| run | {head} |",
            "|---|" + "---|" * len(keys),
            f"| {md_text(sel.label)} = {md_text(best)} | {cells} |"]


def _baselines_table(evals: list[tuple[str, dict, dict]]) -> list[str]:
    """Rows for the ``baseline/<name>/<metric>`` numbers (disentanglement baselines):
    pixels, PCA and ICA once (they do not depend on the run), the untrained network per
    run."""
    metrics = ("beta_vae_metric", "factor_vae_metric", "mig")
    rows: dict[str, dict] = {}
    for label, ev, _ in evals:
        for key, value in ev.items():
            if not key.startswith("baseline/"):
                continue
            _, name, metric = key.split("/", 2)
            row = f"untrained network of {md_text(label)}" if name == "untrained" else name
            rows.setdefault(row, {})[metric] = value
    if not rows:
        return []
    head = " | ".join((find_output(f"test/{m}") or (0, m))[1] for m in metrics)
    out = ["", "Baselines (Higgins et al., Table 1), scored on the same votes:", "",
           f"| representation | {head} |", "|---|" + "---|" * len(metrics)]
    for row, values in rows.items():
        out.append(f"| {row} | {' | '.join(_fmt(values.get(m)) for m in metrics)} |")
    return out


def _provenance(command: str, wall_seconds: float | None, run: Run) -> list[str]:
    out = ["## Provenance", ""]
    if command:
        out.append(f"- command: {md_code(command)}")
    history = run.commands()
    if history and (len(history) > 1 or not command):
        out.append("- commands run on this folder:")
        out += [f"  - {md_code(line)}" for line in history]
    if wall_seconds is not None:
        out.append(f"- wall time (train + evaluate + plot): {wall_seconds:.0f} s")
    out += [f"- hardware: {hardware()}", f"- versions: {versions()}",
            f"- training precision: {training_precision(run.config.train)}",
            f"- run folder: {md_code(run.path)}", ""]
    return out


def write_index(runs_dir: str | Path, results: list[dict[str, Any]],
                profile: str, wall_seconds: float) -> Path:
    """``<runs_dir>/index.md``: one section per paper, each experiment's figures (relative
    links, so the page works offline) and its table of our numbers vs the paper's.

    Args:
        results: one dict per experiment: ``name``, ``paper``, ``description``, ``status``
            ("done", "skipped" or "failed"), ``reason``, ``run`` (a :class:`Run` when done),
            ``seconds``.
    """
    runs_dir = Path(runs_dir)
    lines = [f"# autoencoders: every reproduction (`{profile}` profile)", "",
             f"Hardware: {hardware()}.  ", f"Versions: {versions()}.  ",
             f"Total wall time: {wall_seconds / 60:.1f} min.", ""]
    done = sum(r["status"] == "done" for r in results)
    lines += [f"{done} of {len(results)} experiments ran; skipped and failed ones say why.", ""]
    papers: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        papers.setdefault(r["paper"] or "other", []).append(r)
    for paper, rows in papers.items():
        lines += [f"## {md_text(paper)}", ""]
        for r in rows:
            lines += [f"### {md_text(r['name'])}", ""]
            if r.get("description"):
                lines += [md_text(r["description"]), ""]
            if r["status"] != "done":
                lines += [f"**{r['status']}**: {r.get('reason', '')}", ""]
                continue
            run: Run = r["run"]
            rel = run.path.relative_to(runs_dir) if run.path.is_relative_to(runs_dir) \
                else run.path
            lines += [f"[full report]({rel}/report.md) · {r['seconds']:.0f} s", ""]
            table = _report_numbers(run, str(rel))
            lines += table + [""]
            for f in sorted((run.path / "figures").glob("*.png")):
                lines += [f"![{r['name']} {f.stem}]({rel}/figures/{f.name})", ""]
    path = runs_dir / "index.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _report_numbers(run: Run, prefix: str) -> list[str]:
    """The '## Numbers' table of a run's report.md (a sweep's has a row per child), with
    its relative links rebased onto ``prefix``."""
    p = run.path / "report.md"
    if not p.is_file():
        return []
    out, inside = [], False
    for line in p.read_text().splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Numbers"
            continue
        if inside and line.startswith("|"):
            out.append(line.replace("](", f"]({prefix}/"))
    return out
