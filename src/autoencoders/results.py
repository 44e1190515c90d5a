"""Numbers tables generated from run folders, never typed.

``autoencoders results RUN...`` reads what each run folder recorded about itself —
``eval.json`` (the numbers), ``config.json`` (the experiment, its profile, seed and the
paper's ``[reference]`` values), ``metrics.jsonl`` (the training budget actually used) and
``provenance.json`` (command, commit, hardware, wall time) — and prints one table per
reproduction: every headline number as mean ± standard deviation over the seeds with each
seed's value, the paper's value with its source and whether it was checked against the
paper's text, and each arm's budget.

``--archive DIR`` stores those records (a few KB of JSON, no weights) as
``DIR/<experiment>-<profile>.json``; ``--update FILE...`` rewrites the blocks

    <!-- results: vae-mnist-quick -->
    ...generated table...
    <!-- /results -->

(and ``<!-- results: summary -->`` for the README's one-row-per-paper table) from the
archived records, so docs/REPRODUCTIONS.md regenerates from the runs with one command and a
test can check that it is in sync.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import experiments_dir, read_toml, reference_entry
from .errors import UserError
from .registry import find_output
from .runs import Run, atomic_write_text, seed_folders, seeds_plan

# Numbers shown when a run has them, besides every key the paper has a value for.
HEADLINE = (
    "test/elbo", "test/log_px", "test/error", "test/logreg_error",
    "test/knn_error_k3", "test/knn_error_k5", "test/knn_error_k10",
    "test/knn_error_sample_k3", "test/knn_error_sample_k5", "test/knn_error_sample_k10",
    "test/beta_vae_metric", "test/factor_vae_metric", "test/mig", "valid/dead_units",
)
BLOCK = re.compile(r"(<!-- results: ([A-Za-z0-9_.-]+) -->\n)(.*?)(<!-- /results -->)", re.S)


@dataclass
class Record:
    """One trained model's numbers: a run, a sweep's child, or one seed of either."""

    label: str  # the sweep label, "" for a single run
    seed: int
    eval: dict[str, float]
    reference: dict[str, Any]
    budget: dict[str, Any]
    chosen: str = ""  # a [selection]'s record: the sweep label chosen on validation


@dataclass
class Reproduction:
    """Everything one ``reproduce`` command recorded: its records and provenance."""

    experiment: str
    paper: str
    profile: str
    provenance: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)  # the experiment's [selection]

    @property
    def name(self) -> str:
        return f"{self.experiment}-{self.profile}"


# ---------------------------------------------------------------- reading run folders

def collect(path: str | Path) -> Reproduction:
    """Read a reproduction's folder: a single run, a sweep, or a seed group (``--seeds``)."""
    run = Run.load(path)
    cfg = run.config
    prov = _read_json(run.path / "provenance.json") or _unfinished_seeds(run)
    rep = Reproduction(cfg.name, cfg.paper, cfg.profile, prov,
                       selection=asdict(cfg.selection) if cfg.selection else {})
    rep.records = _records(run, prov)
    if not rep.records:
        raise UserError(f"{run.path} holds no evaluated run (no eval.json): run "
                        f"`autoencoders evaluate {run.path}` first, or give the folder that "
                        "`autoencoders reproduce` printed.")
    return rep


def _unfinished_seeds(run: Run) -> dict[str, Any]:
    """The provenance of a ``--seeds N`` reproduction still running (or stopped): the seeds
    whose own reproduction finished, and N from its command."""
    seeds = seed_folders(run.path, "provenance.json")
    if not seeds:
        if seed_folders(run.path):
            raise UserError(f"No seed of {run.path} has finished yet (each seed's folder gets "
                            "its provenance.json when its reproduction ends); try again "
                            "later, or finish it with `autoencoders reproduce --resume "
                            f"{run.path}`.")
        return {}
    commands = run.commands()  # "YYYY-MM-DD HH:MM:SS  command"
    command = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+", "", commands[0]) if commands else ""
    plan = seeds_plan(run.path)  # older groups: N from the command
    m = re.search(r"--seeds[= ](\d+)", command)
    planned = plan[0] if plan else int(m.group(1)) if m else None
    provs = [_read_json(p / "provenance.json") or {} for p in seeds]
    return {"kind": "seeds", "command": command, "children": [p.name for p in seeds],
            "seeds_planned": planned,
            # the finished seeds' time; load and finish time of the last of them
            "wall_seconds": round(sum(pv.get("wall_seconds", 0.0) for pv in provs), 1),
            **{k: v for k, v in provs[-1].items()
               if k in ("commit", "hardware", "cpu_features", "versions", "load_average",
                        "finished")}}


def _records(run: Run, prov: dict[str, Any]) -> list[Record]:
    kind = prov.get("kind") or ("sweep" if run.config.sweep else "single")
    if kind == "seeds":
        out: list[Record] = []
        for child in prov.get("children", []):
            child_run = Run.load(_child(run, child))
            out += _records(child_run, _read_json(child_run.path / "provenance.json") or {})
        return out
    if kind == "sweep":
        labels = prov.get("children") or run.config.sweep.labels
        arms = [r for label in labels for r in _records_single(Run.load(_child(run, label)),
                                                               label)]
        return _selected(run, arms) + arms
    return _records_single(run, "")


def _selected(run: Run, arms: list[Record]) -> list[Record]:
    """The record of the arm an experiment's ``[selection]`` chooses on validation, under
    the selection's label (empty without a selection or before its arms are evaluated)."""
    sel = run.config.selection
    values = {r.label: r.eval[sel.key] for r in arms if sel and sel.key in r.eval}
    if sel is None or not all(a in values for a in sel.among):
        return []
    best = next(r for r in arms if r.label == sel.choose(values))
    return [Record(sel.label, best.seed, dict(best.eval), paper_values(run, sel.label),
                   best.budget, chosen=best.label)]


DISPLAY_FLAGS = ("--no-progress", "--quiet", "-q", "--verbose", "-v")


def shown_command(command: str) -> str:
    """``command`` without the flags that change only what it prints (progress bars, log
    level) or where its run folder goes (``--runs-dir DIR``): the command a reader runs to
    get the same numbers."""
    words, shown = iter(command.split(" ")), []
    for w in words:
        if w == "--runs-dir":
            next(words, None)  # and its value
        elif w not in DISPLAY_FLAGS and not w.startswith("--runs-dir="):
            shown.append(w)
    return " ".join(shown)


def _child(run: Run, name: str) -> Path:
    path = run.path / name
    if Path(name).name != name or not path.is_dir():
        raise UserError(f"{run.path}/provenance.json names a child {name!r} that is not a "
                        "folder of the run; the run folder is damaged or was moved apart.")
    return path


def _records_single(run: Run, label: str) -> list[Record]:
    ev = run.eval_results()
    if not ev:
        return []
    numbers = {k: float(v) for k, v in ev.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return [Record(label, run.config.train.seed, numbers, paper_values(run, label),
                   _budget(run))]


def paper_values(run: Run, label: str) -> dict[str, Any]:
    """The paper's numbers for ``run`` (a sweep's child: ``label``): from the shipped
    experiment's current ``[reference]`` (where sources and their check status are kept up
    to date), else what the run's config recorded."""
    path = experiments_dir() / f"{run.config.name.replace('-', '_')}.toml"
    if not path.is_file():  # a sweep's parent holds every label's numbers, a child its own
        ref = run.config.reference
        return dict(ref[label]) if isinstance(ref.get(label), dict) else dict(ref)
    ref = read_toml(path).get("reference", {})
    return dict(ref.get(label, {})) if label else {
        k: v for k, v in ref.items() if "/" in k}


def _budget(run: Run) -> dict[str, Any]:
    """What the run trained: epochs and samples of its last stage, and of each earlier
    stage of a staged model (the stacked DAE's pre-training runs, ``<run>/<stage>/``)."""
    rows = run.metrics()
    tc = run.config.train
    last = rows[-1] if rows else {}
    stages = []
    for sub in sorted(p for p in run.path.iterdir() if (p / "metrics.jsonl").is_file()
                      and (p / "config.json").is_file()):
        sub_rows = Run.load(sub).metrics()
        if sub_rows:
            stages.append({"stage": sub.name, "epochs": sub_rows[-1].get("epoch", 0),
                           "samples": sub_rows[-1].get("samples", 0)})
    return {
        "epochs": last.get("epoch", 0), "epochs_planned": tc.epochs,
        "samples": last.get("samples", 0), "train_seconds": round(last.get("time", 0.0), 1),
        "optimizer": tc.optimizer, "lr": tc.lr, "batch_size": tc.batch_size,
        "early_stopping": tc.early_stopping, "stages": stages,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); the run folder is damaged.") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} does not hold a JSON object; the run folder is damaged.")
    return value


# ---------------------------------------------------------------- archive

def archive(rep: Reproduction, folder: str | Path, force: bool = False) -> Path:
    """Store ``rep`` as ``<folder>/<experiment>-<profile>.json`` (refuses to overwrite
    another reproduction's record unless ``force``). The stored command is the one a reader
    runs (:func:`shown_command`): no display flags and no ``--runs-dir`` of the machine
    that ran it."""
    path = Path(folder) / f"{rep.name}.json"
    if path.exists() and not force:
        raise UserError(f"{path} exists (the archived record of another {rep.name} "
                        "reproduction). Pass --force to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(rep)
    if "command" in data["provenance"]:
        data["provenance"]["command"] = shown_command(data["provenance"]["command"])
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def load_archive(path: str | Path) -> Reproduction:
    raw = _read_json(Path(path))
    if raw is None:
        raise UserError(f"{path} does not exist: archive a run first with "
                        "`autoencoders results RUN --archive results`.")
    try:
        records = [Record(**r) for r in raw.pop("records")]
        return Reproduction(**raw, records=records)
    except (KeyError, TypeError) as e:
        raise UserError(f"{path} is not an archived reproduction ({e}).") from None


def load_archives(folder: str | Path) -> dict[str, Reproduction]:
    return {p.stem: load_archive(p) for p in sorted(Path(folder).glob("*.json"))}


# ---------------------------------------------------------------- tables

def _label(key: str) -> str:
    found = find_output(key)  # the registry's description of the key, with its unit
    return found[1] if found else key


def _num(v: float) -> str:
    return f"{v:.2f}"


def _paper_num(value: Any) -> str:
    """A paper's number as printed there: two decimals (9.34, 8.90, -100.00)."""
    return _num(value) if isinstance(value, (int, float)) else str(value)


def stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _ours(values: list[float]) -> str:
    mean, sd = stats(values)
    if len(values) == 1:
        return _num(mean) + " (one seed)"
    return f"{_num(mean)} ± {_num(sd)} ({len(values)} seeds)"


def _groups(rep: Reproduction) -> list[tuple[str, list[Record]]]:
    labels: list[str] = []
    for r in rep.records:
        if r.label not in labels:
            labels.append(r.label)
    return [(label, [r for r in rep.records if r.label == label]) for label in labels]


def _keys(records: list[Record]) -> list[str]:
    ref = records[0].reference
    present = [k for k in HEADLINE if all(k in r.eval for r in records)]
    extra = [k for k in ref if k not in present and all(k in r.eval for r in records)]
    return present + extra


def _budget_text(b: dict[str, Any]) -> str:
    text = f"{b['epochs']} epochs, {b['samples']:,} samples"
    if b.get("early_stopping"):
        text += f", early stopping (patience {b['early_stopping']})"
    if b.get("stages"):
        text += " after " + ", ".join(f"{st['stage']} {st['epochs']} epochs" for st in
                                      b["stages"])
    return text


def markdown(rep: Reproduction) -> str:
    """The table of one reproduction, with its command and provenance under it."""
    lines = ["| run | quantity | ours | each seed | paper | paper's source |",
             "|---|---|---|---|---|---|"]
    sel = rep.selection
    for label, records in _groups(rep):
        keys = _keys(records)
        name = label or rep.experiment
        if sel and (label == sel["label"] or label in sel["among"]) and all(
                sel["key"] in r.eval for r in records):
            keys = [sel["key"], *[k for k in keys if k != sel["key"]]]
        if records[0].chosen:  # the arm chosen on validation, per seed
            chosen = [r.chosen for r in records]
            which = chosen[0] if len(set(chosen)) == 1 else ", ".join(chosen)
            name = f"{label} = {which} (chosen on {_label(sel.get('key', '?'))})"
        for key in keys:
            values = [r.eval[key] for r in records]
            each = ", ".join(_num(v) for v in values) if len(values) > 1 else "—"
            value, source, status = reference_entry(records[0].reference.get(key))
            paper = "—" if value is None else f"{_paper_num(value)} ({status})"
            lines.append(f"| {_cell(name)} | {_cell(_label(key))} | "
                         f"{_ours(values)} | {each} | {paper} | {_cell(source)} |")
    lines += _baselines(rep)
    p = rep.provenance
    budgets = {_budget_text(r.budget) for r in rep.records}
    lines += [""]
    if len(budgets) == 1:
        lines.append(f"Budget of every arm and seed: {budgets.pop()}.  ")
    else:
        lines.append("Budgets: " + "; ".join(
            f"{label or rep.experiment}: {_budget_text(rs[0].budget)}"
            for label, rs in _groups(rep)) + ".  ")
    if p.get("command"):
        lines.append(f"Command: `{shown_command(p['command'])}`  ")
    if p.get("seeds_planned") and p["seeds_planned"] > len(p.get("children", [])):
        lines.append(f"**Unfinished:** {len(p['children'])} of the {p['seeds_planned']} "
                     "seeds this command trains had finished when this table was made.  ")
    wall = p.get("wall_seconds")
    if wall is not None:
        load = p.get("load_average") or []
        busy = f" (load average {load[1]:.1f} on {_cores(p)} cores)" if len(load) > 1 else ""
        lines.append(f"Wall time: {wall / 60:.1f} min{busy}, finished {p.get('finished', '?')}"
                     f", git {p.get('commit') or '?'}.  ")
    if p.get("hardware"):
        feats = f" ({p['cpu_features']})" if p.get("cpu_features") else ""
        machine = re.sub(r", torch threads \d+", "", p["hardware"])  # the command sets them
        lines.append(f"Machine: {machine}{feats}; {p.get('versions', '')}.")
    return "\n".join(lines)


BASELINES = {
    "pixels": "raw pixels (no model)",
    "pca": "PCA of the pixels, as many components as latents",
    "ica": "FastICA of the pixels, as many components as latents",
    "untrained": "the model's network at its initial weights",
}


def _baselines(rep: Reproduction) -> list[str]:
    """The disentanglement baselines (``baseline/<name>/<metric>``), mean over seeds: what
    a representation with no learning scores on the same votes."""
    names = sorted({k.split("/")[1] for r in rep.records for k in r.eval
                    if k.startswith("baseline/")}, key=lambda n: list(BASELINES).index(n)
                   if n in BASELINES else len(BASELINES))
    if not names:
        return []
    metrics = [m for m in ("beta_vae_metric", "factor_vae_metric", "mig")
               if any(f"baseline/{n}/{m}" in r.eval for n in names for r in rep.records)]
    out = ["", "Baselines on the same votes (mean over every run that scored them):", "",
           "| representation | " + " | ".join(_cell(_label(f"test/{m}")) for m in metrics)
           + " |", "|---|" + "---|" * len(metrics)]
    for n in names:
        cells = []
        for m in metrics:
            values = [r.eval[f"baseline/{n}/{m}"] for r in rep.records
                      if f"baseline/{n}/{m}" in r.eval]
            cells.append(_num(stats(values)[0]) if values else "—")
        out.append(f"| {_cell(BASELINES.get(n, n))} | {' | '.join(cells)} |")
    return out


def _cores(p: dict[str, Any]) -> str:
    m = re.search(r"(\d+) cores", p.get("hardware", ""))
    return m.group(1) if m else "?"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary(reps: dict[str, Reproduction]) -> str:
    """The README's table: one row per archived reproduction, the numbers the paper has a
    value for (those marked ``headline = true`` in the experiment's ``[reference]``, else
    all), as mean ± sd over the seeds, with the command that made them. A headline entry
    without a ``value`` (``{ headline = true, source = "..." }``: a paper that shows figures
    but reports no such number) puts our number beside "—"."""
    lines = ["| paper | command | ours | paper |", "|---|---|---|---|"]

    def year(rep: Reproduction) -> tuple[str, str]:  # oldest paper first
        found = re.findall(r"(?:19|20)\d\d", rep.paper)
        return (found[-1] if found else "9999", rep.name)

    for rep in sorted(reps.values(), key=year):
        ours, theirs = [], []
        for label, records in _groups(rep):
            ref = records[0].reference
            # the keys marked `headline = true`, else every key the paper has a value for
            keys = [k for k, e in ref.items() if isinstance(e, dict) and e.get("headline")]
            for key in keys or list(ref):
                if not all(key in r.eval for r in records):
                    continue
                value, _, status = reference_entry(records[0].reference[key])
                name = f"{label}: " if label else ""
                short = _label(key).split(",")[0]
                ours.append(f"{name}{short} {_ours([r.eval[key] for r in records])}")
                if value is None:  # a headline number the paper does not report
                    theirs.append(f"{name}— (no number in the paper)")
                else:
                    theirs.append(f"{name}{_paper_num(value)}"
                                  + ("" if status == "confirmed" else " (unconfirmed)"))
        if not ours:
            continue
        paper = _short_paper(rep.paper)
        command = f"`{_cell(shown_command(rep.provenance.get('command', '')))}`"
        planned, done = rep.provenance.get("seeds_planned"), rep.provenance.get("children", [])
        if planned and planned > len(done):
            command += f" ({len(done)} of its {planned} seeds finished)"
        lines.append(f"| {_cell(paper)} | {command} | {'<br>'.join(map(_cell, ours))}"
                     f" | {'<br>'.join(map(_cell, theirs))} |")
    return "\n".join(lines)


def _short_paper(paper: str) -> str:
    """"A, B & C, Title, VENUE YEAR" -> "A et al. (VENUE YEAR)"; two authors stay two."""
    parts = [x.strip() for x in paper.split(",")]
    authors = parts[0]
    if len(parts) > 2 and "&" not in authors and "et al" not in authors:  # "Vincent, L..."
        authors = f"{authors} et al."
    return f"{authors} ({parts[-1]})" if len(parts) > 1 else authors


def update(files: list[str | Path], archive_dir: str | Path, check: bool = False) -> list[Path]:
    """Rewrite the generated blocks of ``files`` from ``archive_dir``; return the files that
    changed (with ``check``, change nothing and only report them). Every file is rendered
    before any is written, so an error leaves all of them as they were."""
    reps = load_archives(archive_dir)
    changed, rendered = [], []
    for f in map(Path, files):
        try:
            text = f.read_text()
        except OSError as e:
            raise UserError(f"Cannot read {f}: {e.strerror or e}.") from None

        def block(m: re.Match, f=f) -> str:
            name = m.group(2)
            if name == "summary":
                body = summary(reps)
            elif name in reps:
                body = markdown(reps[name])
            else:
                raise UserError(f"{f} asks for results {name!r}, which is not archived in "
                                f"{archive_dir} (archived: {', '.join(reps) or 'none'}). "
                                "Archive the run with `autoencoders results RUN --archive "
                                f"{archive_dir}` or remove the block.")
            return f"{m.group(1)}{body}\n{m.group(4)}"

        new = BLOCK.sub(block, text)
        if new != text:
            changed.append(f)
            rendered.append((f, new))
    if not check:
        for f, new in rendered:
            atomic_write_text(f, new)
    return changed


def write_seeds_report(parent: Run, children: list[tuple[str, Run]], command: str = "",
                       wall_seconds: float | None = None) -> Path:
    """``<run>/report.md`` for ``reproduce --seeds N``: the numbers over the seeds and a link
    to each seed's own report."""
    cfg = parent.config
    prov = {"command": command, "wall_seconds": wall_seconds}
    written = _read_json(parent.path / "provenance.json")  # when written just before
    if written and written.get("command") == command:
        prov = written
    rep = Reproduction(cfg.name, cfg.paper, cfg.profile, prov,
                       selection=asdict(cfg.selection) if cfg.selection else {})
    for _, child in children:
        prov = _read_json(child.path / "provenance.json") or {}
        rep.records += _records(child, prov)
    lines = [f"# {cfg.name} ({len(children)} seeds)", "", f"**Paper:** {cfg.paper}  ",
             f"**Profile:** `{cfg.profile}`", "", "## Numbers", "", markdown(rep), "",
             "## Each seed", ""]
    lines += [f"- [{label}]({label}/report.md)" for label, _ in children]
    path = parent.path / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
