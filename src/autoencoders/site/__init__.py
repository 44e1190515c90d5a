"""``autoencoders site``: a static results website built from run folders.

    site/
      index.html              one card per paper, each experiment's numbers beside the paper's
      <experiment>/index.html numbers, live latent explorer, figures, training, provenance
      <experiment>/figures/   the run's PNGs (a sweep's runs under <label>/)
      data/<id>.js            explorer data: decoder weights (base64), codes, test images
      assets/                 site.css, explorer.js (hand-written forward pass, no framework)
      .autoencoders-site      marks the folder as a site (a rebuild may replace it)

Everything is relative links and ``<script src>`` files, so the pages work opened from disk
(browsers refuse ``fetch`` of ``file://``) and behind any static server; nothing is loaded
from the network.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..data.load import load_split
from ..errors import SiteError, UserError
from ..registry import FIGURES
from ..runs import Run, seed_folders
from . import explorer as ex
from .pages import Explorer, Figure, Page, experiment_page, index_page, report_sections

MARKER = ".autoencoders-site"
# Decoder weights one page may ship (float16 in base64: 8/3 bytes per parameter). A sweep's
# runs get live decoders in order until the budget is spent, then traversal frames: the
# page stays light (under 1 s to interactive) and the whole site small.
PAGE_LIVE_PARAMS = 1_100_000
THUMBNAIL_ORDER = ("manifold", "traversals", "filters", "samples", "sticks", "reconstructions")


def find_runs(paths: list[str | Path]) -> list[Run]:
    """Run folders named by ``paths``: a run folder itself, or a folder holding runs
    (``runs/`` or ``runs/<experiment>/``), of which the newest run of each experiment is
    taken. A sweep's runs are part of their sweep, never pages of their own."""
    found: list[Run] = []
    for p in map(Path, paths):
        if (p / "config.json").is_file():
            found.append(Run.load(_first_seed(p) or p))
            continue
        if not p.is_dir():
            raise SiteError(f"{p} is not a folder. Pass run folders (runs/<experiment>/"
                            "<timestamp>) or a folder of runs (runs/).")
        candidates = [c.parent for c in sorted(p.glob("*/config.json"))
                      + sorted(p.glob("*/*/config.json"))
                      if not (c.parent.parent / "config.json").is_file()]
        newest: dict[str, Run] = {}
        for folder in candidates:  # sorted: timestamps ascending, the last one wins
            folder = _first_seed(folder) or folder
            if (folder / "report.md").is_file():
                run = Run.load(folder)
                newest[run.config.name] = run
        if not newest:
            raise SiteError(f"No finished run (a folder with config.json and report.md) in "
                            f"{p}. Run `autoencoders reproduce EXPERIMENT` first, or pass "
                            "run folders.")
        found += newest.values()
    return found


def _first_seed(folder: Path) -> Path | None:
    """A ``reproduce --seeds N`` folder is shown by its first finished seed (``seed<k>/``
    with a report), the run whose figures the docs show; None for any other folder."""
    seeds = seed_folders(folder, "config.json", "report.md")
    return seeds[0] if seeds else None


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "run"
    slug, i = base, 1
    while slug in taken or slug in ("assets", "data"):
        i += 1
        slug = f"{base}-{i}"
    taken.add(slug)
    return slug


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SiteError(f"--out {out} is a file; choose a folder for the site.")
    if out.is_dir() and any(out.iterdir()):
        if (out / MARKER).is_file():
            shutil.rmtree(out)  # an earlier site: replaced as a whole
        elif not force:
            raise SiteError(f"--out {out} is a folder that is not empty and holds no site "
                            f"(no {MARKER} file). Choose another folder, or pass --force to "
                            "write the site into it (files of the same names are replaced).")
    out.mkdir(parents=True, exist_ok=True)


def _copy_figures(run: Run, dest: Path, prefix: str = "") -> list[Figure]:
    figs = []
    for f in sorted((run.path / "figures").glob("*.png")):
        target = dest / "figures" / prefix / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        label = f"{f.stem} ({prefix})" if prefix else f.stem
        figs.append(Figure(src=quote((Path("figures") / prefix / f.name).as_posix()),
                           name=label,
                           caption=FIGURES[f.stem].description if f.stem in FIGURES
                           else ""))
    return figs


def _sweep_children(run: Run) -> list[tuple[str, Run]]:
    sweep = run.config.sweep
    if sweep is None or not sweep.values:
        return []
    out = []
    for i in range(len(sweep.values)):
        label = sweep.label(i)
        if (run.path / label / "config.json").is_file():
            out.append((label, Run.load(run.path / label)))
    return out


def _explorer(run: Run, title: str, data_id: str, data_dir: Path,
              data_override: str | None, budget: list[int]) -> Explorer | None:
    """Export one run's explorer data into ``data/<data_id>.js`` (or say why not); None
    for models without a latent space to explore (DAE, k-sparse AE, SdA)."""
    try:
        model = run.load_model(run.config.eval.checkpoint)
    except UserError as e:
        return Explorer(data_id, title, None, f"No explorer: the model could not be loaded ({e}).")
    if not ex.has_latents(model):
        return None
    live = ex.live_params(model) <= budget[0]
    if ex.kind(model, live) is None:
        return Explorer(data_id, title, None, ex.why_not(model))
    if data_override:
        run.config.data.data_dir = data_override
    try:
        test = load_split(run.config, "test")
    except UserError as e:
        return Explorer(data_id, title, None,
                        f"No explorer: the test images are needed for the codes and were not "
                        f"found ({e}). Pass --data-dir.")
    data = ex.explorer_data(model, test.x, test.y, live)
    if "decoder" in data:
        budget[0] -= ex.live_params(model)
    payload = json.dumps(data, separators=(",", ":"))
    (data_dir / f"{data_id}.js").write_text(f"AE.register({json.dumps(data_id)},{payload});\n")
    note = ""
    if data["latent"] == "sticks":
        note = ("Stick-breaking latents: slider k sets the stick fraction v_k in [0, 1] "
                f"(the first {len(data['sliders'])} of {data['n_latent']} sticks); the "
                "weights pi_k = v_k (1 - v_1) ... (1 - v_(k-1)) are scaled by the model's "
                f"decoder_input_scale ({data['input_scale']:g}) before the decoder, as in "
                "training. Sticks without a slider keep the test set's average fraction.")
    elif data["kind"] == "sliders" and data["n_latent"] > len(data["sliders"]):
        note = (f"Sliders for the {len(data['sliders'])} latents with the highest KL of "
                f"{data['n_latent']}; the others stay at 0 (the prior mean) or at the code "
                "of the test image you pick.")
    return Explorer(data_id, title, data["kind"], note)


def _page(run: Run, out: Path, slug: str, data_override: str | None) -> Page:
    dest = out / slug
    dest.mkdir(parents=True, exist_ok=True)
    report = run.path / "report.md"
    sections = report_sections(report.read_text()) if report.is_file() else {}
    figures = _copy_figures(run, dest)
    children = _sweep_children(run)
    found: list[Explorer | None] = []
    budget = [PAGE_LIVE_PARAMS]
    if children:
        for i, (label, child) in enumerate(children):
            if (child.path / "figures" / "traversals.png").is_file():
                figures += [f for f in _copy_figures(child, dest, prefix=label)
                            if f.src.endswith("/traversals.png")]
            found.append(_explorer(child, label, f"{slug}-{i}", out / "data", data_override,
                                   budget))
    else:
        budget = [max(PAGE_LIVE_PARAMS, ex.MAX_LIVE_PARAMS)]  # one run: its decoder fits
        found.append(_explorer(run, run.config.name, slug, out / "data", data_override,
                               budget))
    explorers = [x for x in found if x is not None]
    thumb = next((f"{slug}/{f.src}" for name in THUMBNAIL_ORDER for f in figures
                  if Path(f.src).stem == name), None)
    cfg = run.config
    return Page(slug=slug, name=cfg.name, paper=cfg.paper, profile=cfg.profile,
                description=cfg.description, sections=sections, figures=figures,
                explorers=explorers, thumbnail=thumb)


def build_site(runs: list[str | Path], out: str | Path = "site", force: bool = False,
               data_dir: str | None = None) -> Path:
    """Build the site from run folders (or folders of runs) into ``out``; returns the path
    of its ``index.html``.

    Args:
        runs: run folders, or folders holding runs (the newest run of each experiment).
        out: the site's folder; an earlier site there is replaced, any other non-empty
            folder is refused unless ``force``.
        data_dir: where the test images are (else each run's own ``data.data_dir``); the
            explorers need them for the codes and the strip of test images.
    """
    found = find_runs(runs)
    out = Path(out)
    _prepare_out(out, force)
    (out / "assets").mkdir(exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    static = resources.files("autoencoders.site") / "static"
    for name in ("site.css", "explorer.js"):
        (out / "assets" / name).write_bytes((static / name).read_bytes())
    taken: set[str] = set()
    pages = [_page(run, out, _slug(run.config.name, taken), data_dir) for run in found]
    for page in pages:
        (out / page.slug / "index.html").write_text(experiment_page(page))
    index = out / "index.html"
    index.write_text(index_page(pages))
    (out / MARKER).write_text(json.dumps({"pages": [p.slug for p in pages]}) + "\n")
    return index


def site_bytes(out: str | Path) -> int:
    """Total size of the site's files (its page weight, everything included)."""
    return sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
