"""Command line: a thin layer over the library.

    autoencoders list [experiments|models|datasets]
    autoencoders train EXPERIMENT [--profile quick|full] [--set key=value ...] [--device D]
    autoencoders train --resume RUN
    autoencoders evaluate RUN [--set eval.iw_samples=1000] [--device D]
    autoencoders reproduce EXPERIMENT [--profile quick|full] [--set key=value ...]
    autoencoders reproduce all [--only A,B] [--skip-done] [--jobs N]
    autoencoders reproduce --resume RUN
    autoencoders plot RUN
    autoencoders report RUN
    autoencoders export RUN NAME [--out-dir DIR] [--force]
    autoencoders runs [DIR]
    autoencoders results RUN... [--archive DIR] | --update FILE...
    autoencoders site [RUN ...] [--out site] [--force]
    autoencoders data list | fetch NAME

Bad input (an unknown key, a missing file, a damaged checkpoint) prints one paragraph
and exits with status 2; there is no traceback for a user error. Messages go through
:mod:`logging` (logger ``"autoencoders"``; ``-q`` warnings only, ``-v`` debug); results
(paths, JSON, tables) go to stdout; progress bars are tqdm's.

Nothing heavy is imported before the arguments are parsed: ``autoencoders --help``
does not load PyTorch.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import shutil
import sys
import textwrap

from . import __version__
from .errors import UserError
from .logs import configure
from .logs import logger as log

RUN_HELP = "a run folder, e.g. runs/vae-mnist/20260101-120000"
DEVICE_HELP = ("where to compute: auto (a CUDA GPU when PyTorch sees one, else the CPU), "
               "cpu, cuda or cuda:N (sets train.device)")


def _parser() -> argparse.ArgumentParser:
    verbosity = argparse.ArgumentParser(add_help=False)
    group = verbosity.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only warnings and errors; no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also debug messages")

    p = argparse.ArgumentParser(
        prog="autoencoders", parents=[verbosity],
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
        description="Reproduce classic autoencoder papers (DAE, k-sparse AE, VAE,\n"
                    "stick-breaking VAE, beta-VAE), and train them on your own images.",
        epilog="examples:\n"
               "  autoencoders list\n"
               "  autoencoders reproduce vae-mnist --profile quick\n"
               "  autoencoders train vae-mnist --set data.name=folder "
               "--set data.path=my_images/\n"
               "  autoencoders evaluate runs/vae-mnist/<timestamp>\n\n"
               "`autoencoders COMMAND --help` describes a command.",
    )
    p.add_argument("--version", action="version", version=f"autoencoders {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[verbosity])

    def common(sp, experiment: bool = True, example: str = "train.epochs=5"):
        if experiment:
            sp.add_argument("--profile", default=None, choices=["quick", "full"],
                            help="quick: CPU minutes; full: the paper's budget "
                                 "(default: quick)")
        sp.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help=f"override a config key (repeatable), e.g. {example}")
        sp.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder with the data files (else $AUTOENCODERS_DATA, else the "
                             "user cache)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")

    def runs_dir(sp):
        sp.add_argument("--runs-dir", default="runs", metavar="DIR",
                        help="where new run folders are made, as DIR/EXPERIMENT/TIMESTAMP "
                             "(default: runs)")

    def device(sp):
        sp.add_argument("--device", default=None, metavar="DEVICE", help=DEVICE_HELP)

    def tensorboard_flag(sp):
        sp.add_argument("--tensorboard", action="store_true",
                        help="also log the loss terms (and, after plotting, the figures) "
                             "into RUN/tensorboard (train.tensorboard = true; needs "
                             "`pip install autoencoders[tensorboard]`)")

    sp = command("list", "list experiments, models and datasets (-v: full descriptions)")
    sp.add_argument("what", nargs="?", default="all",
                    choices=["all", "experiments", "models", "datasets"],
                    help="what to list (default: all)")

    sp = command("train", "train an experiment's model into a new run folder")
    sp.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                    help="experiment name (see `autoencoders list`) or a .toml path")
    sp.add_argument("--resume", metavar="RUN",
                    help="continue a run from its last checkpoint (bit-identical)")
    runs_dir(sp)
    device(sp)
    tensorboard_flag(sp)
    common(sp)

    sp = command("reproduce", "train, evaluate, plot and report an experiment in one go")
    sp.add_argument("experiment", nargs="?", metavar="EXPERIMENT",
                    help="experiment name, a .toml path, or 'all' (every experiment)")
    sp.add_argument("--resume", metavar="RUN",
                    help="continue an interrupted reproduction: finish training, then "
                         "the steps not yet done (evaluate, plot, report)")
    sp.add_argument("--only", metavar="A,B", default=None,
                    help="with 'all': run only these experiments (comma-separated)")
    sp.add_argument("--skip-done", action="store_true",
                    help="with 'all': keep experiments that already have a finished run "
                         "of the same profile in --runs-dir")
    sp.add_argument("--jobs", default=None, metavar="N",
                    help="with 'all': experiments run at once, each in its own process "
                         "with cores/N threads (default: the number of cores, at most 4)")
    sp.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="train N seeds (train.seed, +1, ...) and report mean, standard "
                         "deviation and every seed's value (default 1)")
    runs_dir(sp)
    device(sp)
    tensorboard_flag(sp)
    common(sp)

    sp = command("results", "numbers tables generated from run folders")
    sp.add_argument("runs", nargs="*", metavar="RUN",
                    help="folders printed by `autoencoders reproduce` (single, sweep or seeds)")
    sp.add_argument("--archive", metavar="DIR", default=None,
                    help="also store each run's records (JSON, no weights) as "
                         "DIR/<experiment>-<profile>.json")
    sp.add_argument("--update", metavar="FILE", nargs="+", default=None,
                    help="rewrite the <!-- results: NAME --> blocks of FILE from the archive")
    sp.add_argument("--archive-dir", default="results", metavar="DIR",
                    help="where --update reads archived records (default: results)")
    sp.add_argument("--check", action="store_true",
                    help="with --update: change nothing, exit 1 if a block is out of date")
    sp.add_argument("--force", action="store_true",
                    help="replace an archived record of the same experiment and profile")

    sp = command("evaluate", "test-set numbers of a run -> RUN/eval.json")
    sp.add_argument("run", metavar="RUN", help=RUN_HELP)
    sp.add_argument("--device", default="auto", metavar="DEVICE",
                    help="where to evaluate: auto (default), cpu, cuda or cuda:N")
    common(sp, experiment=False, example="eval.iw_samples=1000")

    for name, text in (("plot", "draw a run's figures into RUN/figures"),
                       ("report", "write a run's RUN/report.md")):
        sp = command(name, text)
        sp.add_argument("run", metavar="RUN", help=RUN_HELP)

    sp = command("export", "save a run's model as a small pretrained file")
    sp.add_argument("run", metavar="RUN", help=RUN_HELP)
    sp.add_argument("name", metavar="NAME",
                    help="name of the pretrained model, for ae.pretrained(NAME)")
    sp.add_argument("--out-dir", default=None, metavar="DIR",
                    help="folder for NAME.safetensors (default: RUN/export); load it with "
                         "ae.pretrained(PATH)")
    sp.add_argument("--force", action="store_true", help="replace an existing file")

    sp = command("runs", "list run folders and their status (done, interrupted, failed)")
    sp.add_argument("dir", nargs="?", default="runs", metavar="DIR",
                    help="a folder of runs (default: runs)")

    sp = command("site", "build the static results website from run folders")
    sp.add_argument("runs", nargs="*", default=["runs"], metavar="RUN",
                    help="run folders or folders of runs (newest run per experiment); "
                         "default: runs")
    sp.add_argument("--out", default="site", metavar="DIR",
                    help="the site's folder (default: site)")
    sp.add_argument("--force", action="store_true",
                    help="write into a non-empty folder that is not a site")
    sp.add_argument("--data-dir", default=None, metavar="DIR",
                    help="folder with the data files (the explorers show test images)")

    sp = command("data", "list or download datasets")
    dsub = sp.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="every data set, its files, and whether they are present",
                         parents=[verbosity])
    dl.add_argument("--data-dir", default=None, metavar="DIR",
                    help="folder searched first (else $AUTOENCODERS_DATA, else the user cache)")
    df = dsub.add_parser("fetch", help="download and verify a dataset", parents=[verbosity])
    df.add_argument("name", metavar="NAME", help="a data set from `autoencoders data list`")
    df.add_argument("--data-dir", default=None, metavar="DIR",
                    help="where the files go (else $AUTOENCODERS_DATA, else the user cache)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autoencoders`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:  # no command: the overview, not an error
        parser.print_help()
        return 0
    _setup_logging(args)
    command = "autoencoders " + " ".join(shlex.quote(a) for a in argv)
    try:
        return _dispatch(args, command)
    except UserError as e:
        log.error(_printable(f"autoencoders: error: {e}"))
        return 2
    except OSError as e:  # a file the library did not expect to fail: name it, no traceback
        where = f" ({e.filename})" if e.filename else ""
        log.error(_printable(f"autoencoders: error: {e.strerror or e}{where}. Check that the "
                             "file or folder exists, is readable (and writable for run "
                             "folders), and that the disk has free space."))
        return 2
    except KeyboardInterrupt:
        log.error("autoencoders: interrupted.")
        return 130


def _printable(text: str) -> str:
    """``text`` with the undecodable bytes of a non-UTF-8 path shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _setup_logging(args) -> None:
    """Messages of the ``autoencoders`` logger to stderr, plain text; ``-q`` / ``-v``."""
    level = logging.WARNING if getattr(args, "quiet", False) else \
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    if getattr(args, "quiet", False):
        args.no_progress = True
    configure(level)


def _overrides(args) -> list[str]:
    out = list(args.overrides)
    if getattr(args, "data_dir", None):
        out.append(f"data.data_dir={_toml_str(args.data_dir)}")
    if getattr(args, "tensorboard", False):
        out.append("train.tensorboard=true")
    if getattr(args, "device", None):
        out.append(f"train.device={_toml_str(args.device)}")
    return out


def _require_tensorboard(cfg) -> None:
    """Fail before any run folder is made when TensorBoard is asked for but absent."""
    if cfg.train.tensorboard:
        from .tensorboard_log import require

        require()


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dispatch(args, command: str) -> int:
    progress = not getattr(args, "no_progress", False)
    if args.cmd == "list":
        return _list(args.what, full=getattr(args, "verbose", False))
    if args.cmd == "data":
        return _data(args)
    if args.cmd == "train":
        return _train(args, command, progress)
    if args.cmd == "reproduce":
        return _reproduce(args, command, progress)
    if args.cmd == "results":
        return _results(args)
    if args.cmd == "evaluate":
        import json

        from .pipeline import evaluate
        from .runs import Run

        run = Run.load(args.run)
        if args.overrides or args.data_dir:
            run.config = _apply_eval_overrides(run, _overrides_no_device(args))
        with run.lock():
            run.log_command(command)
            print(json.dumps(evaluate(run, progress=progress, device=args.device), indent=2))
        return 0
    if args.cmd == "plot":
        from .pipeline import plot
        from .runs import Run

        run = Run.load(args.run)
        with run.lock():
            run.log_command(command)
            for p in plot(run):  # also mirrored into RUN/tensorboard when the run logs there
                print(_printable(str(p)))
        return 0
    if args.cmd == "report":
        from .report import write_report
        from .runs import Run

        run = Run.load(args.run)
        with run.lock():
            run.log_command(command)
            print(_printable(str(write_report(run, command=""))))
        return 0
    if args.cmd == "export":
        from .pretrained import export
        from .runs import Run

        print(_printable(str(export(Run.load(args.run), args.name, args.out_dir,
                                    force=args.force))))
        return 0
    if args.cmd == "runs":
        return _runs(args.dir)
    if args.cmd == "site":
        from .site import build_site, site_bytes

        index = build_site(args.runs, args.out, force=args.force, data_dir=args.data_dir)
        print(f"site: {index} ({site_bytes(args.out) / 1e6:.1f} MB; open it in a browser)")
        return 0
    raise AssertionError(args.cmd)  # argparse only lets known commands through


def _locked(run):
    """``run.lock()`` in the process that writes the run (rank 0 under torchrun)."""
    from contextlib import nullcontext

    from . import distributed

    return run.lock() if distributed.is_main() else nullcontext()


def _runs(folder: str) -> int:
    from pathlib import Path

    from .runs import find_runs, run_status

    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder; give the --runs-dir of your runs "
                        "(default: runs).")
    found = find_runs(folder)
    for item in found:
        if isinstance(item, tuple):
            print(_printable(f"{item[0]}  damaged: {item[1]}"))
        else:
            print(_printable(f"{item.path}  {run_status(item)}"))
    if not found:
        print(f"no run folders under {folder}")
    return 0


def _overrides_no_device(args) -> list[str]:
    return [o for o in _overrides(args) if not o.startswith("train.device=")]


def _train(args, command: str, progress: bool) -> int:
    from . import distributed
    from .config import load_experiment
    from .devices import check, resolve
    from .pipeline import train_stages  # staged models (SdA): one run per stage
    from .runs import Run
    from .train import check_resumable, create_run, train

    if args.resume:
        run = Run.load(args.resume)
        check_resumable(run)
        if args.overrides:
            raise UserError("--set cannot change a run being resumed: its config is fixed "
                            f"in {run.path / 'config.json'}. Start a new run instead.")
        if args.experiment or args.profile or args.data_dir:
            given = ", ".join(x for x, on in (
                (f"experiment {args.experiment!r}", args.experiment),
                (f"--profile {args.profile}", args.profile),
                ("--data-dir", args.data_dir)) if on)
            raise UserError(f"train --resume RUN continues the run as configured in "
                            f"{run.path / 'config.json'}; {given} cannot apply to it. Drop "
                            "them to resume, or leave out --resume to start a new run.")
        if args.tensorboard:  # logging only: the rest of training is unchanged
            run.config.train.tensorboard = True
        if args.device:  # where to compute, not what: the run's numbers stay its own
            run.config.train.device = args.device
            run.config.train.validate()
        _require_tensorboard(run.config)
        distributed.setup(resolve(run.config.train.device).type)
        with _locked(run):
            if distributed.is_main():
                run.log_command(command)
            train(run.config, run, resume=True, progress=progress)
    else:
        if not args.experiment:
            raise UserError("train needs an EXPERIMENT (see `autoencoders list "
                            "experiments`) or --resume RUN.")
        cfg = load_experiment(args.experiment, args.profile or "quick", _overrides(args))
        _require_tensorboard(cfg)
        check(cfg.train)  # device and precision, before the run folder is made
        distributed.setup(resolve(cfg.train.device).type)  # joins torchrun's group, if any
        run = create_run(cfg, args.runs_dir)
        with _locked(run):
            if distributed.is_main():
                run.log_command(command)
            run = train_stages(cfg, run, progress=progress)
    distributed.cleanup()
    if distributed.is_main():
        log.info(f"run folder: {run.path}")
    return 0


def _jobs(value: str | None) -> int:
    """``--jobs``: a whole number >= 1; default the number of cores, at most 4."""
    import os

    if value is None:
        return max(1, min(4, os.cpu_count() or 1))
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UserError(f"--jobs {value!r} is not valid: give a whole number >= 1 (the "
                        "experiments run at once, e.g. --jobs 2 on a 2-core machine; "
                        "--jobs 1 runs them one after another).")
    return jobs


def _reproduce(args, command: str, progress: bool) -> int:
    from .config import load_experiment

    if args.resume:
        if args.experiment or args.overrides or args.only or args.skip_done or \
                args.seeds != 1 or args.jobs is not None:
            raise UserError("reproduce --resume RUN continues that run as configured; drop "
                            "EXPERIMENT, --set, --seeds, --jobs, --only and --skip-done.")
        from .pipeline import resume_reproduction

        run = resume_reproduction(args.resume, progress=progress, command=command,
                                  device=args.device)
        log.info(f"report: {run.path / 'report.md'}")
        return 0
    if not args.experiment:
        raise UserError("reproduce needs an EXPERIMENT (see `autoencoders list experiments`), "
                        "'all', or --resume RUN.")
    if args.experiment != "all" and (args.only or args.skip_done or args.jobs is not None):
        raise UserError(f"--only, --skip-done and --jobs apply to `reproduce all`, not to one "
                        f"experiment ({args.experiment!r}).")
    if args.experiment == "all":
        from .pipeline import reproduce_all

        if args.tensorboard:
            raise UserError("--tensorboard applies to one experiment (reproduce "
                            "EXPERIMENT --tensorboard); `reproduce all` runs the "
                            "experiments as shipped.")
        if args.overrides or args.device or args.seeds != 1:
            raise UserError("`reproduce all` runs the experiments as shipped: --set, --seeds "
                            "and --device apply to one experiment (reproduce EXPERIMENT).")
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        index = reproduce_all(args.profile or "quick", args.runs_dir, progress, args.data_dir,
                              command=command, only=only, skip_done=args.skip_done,
                              jobs=_jobs(args.jobs))
        log.info(f"index: {index}")
        return 0
    from .pipeline import reproduce

    cfg = load_experiment(args.experiment, args.profile or "quick", _overrides(args))
    _require_tensorboard(cfg)
    run = reproduce(cfg, runs_dir=args.runs_dir, progress=progress, command=command,
                    seeds=args.seeds)
    if cfg.train.tensorboard:  # figures were mirrored there by pipeline.plot
        log.info(f"tensorboard: tensorboard --logdir {run.path}")
    log.info(f"report: {run.path / 'report.md'}")
    return 0


def _results(args) -> int:
    from . import results

    if not args.runs and not args.update:
        raise UserError("results needs RUN folders (printed by `autoencoders reproduce`) "
                        "or --update FILE...; e.g. `autoencoders results runs/vae-mnist/"
                        "20261130-101500 --archive results`.")
    for path in args.runs:
        rep = results.collect(path)
        print(f"## {rep.name}\n\n{results.markdown(rep)}\n")
        if args.archive:
            print(f"archived: {results.archive(rep, args.archive, force=args.force)}")
    if args.update:
        changed = results.update(args.update, args.archive_dir, check=args.check)
        for f in changed:
            print(f"{'out of date' if args.check else 'updated'}: {f}")
        if args.check and changed:
            return 1
    return 0


def _apply_eval_overrides(run, overrides: list[str]):
    from .config import _parse_overrides, _set_dotted, from_dict

    raw = run.config.to_dict()
    for key, value in _parse_overrides(overrides).items():
        if not key.startswith(("eval.", "data.data_dir", "data.download")):
            raise UserError(f"evaluate can only override eval.* and data.data_dir keys, got "
                            f"{key!r}; the model's config is fixed by the run.")
        _set_dotted(raw, key, value)
    return from_dict(raw)


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))


def _rows(items: list[tuple[str, str]], indent: int = 2) -> list[str]:
    """``name  text`` rows, the text wrapped at word boundaries to the terminal width and
    continued under itself (never cut)."""
    name_w = min(max((len(n) for n, _ in items), default=0), 28)
    lines = []
    for name, text in items:
        head = " " * indent + name.ljust(name_w) + "  "
        pad = " " * len(head)
        wrapped = textwrap.wrap(" ".join(text.split()), width=_width() - len(pad)) or [""]
        if len(name) > name_w:  # an unusually long name: text starts on the next line
            lines.append(" " * indent + name)
            lines += [pad + w for w in wrapped]
            continue
        lines.append(head + wrapped[0])
        lines += [pad + w for w in wrapped[1:]]
    return lines


def _first_sentence(text: str) -> str:
    """Up to the first full stop followed by a space (the whole text if none)."""
    text = " ".join(text.split())
    match = re.search(r"(?<=[a-z0-9)\]])\. ", text)
    return text[:match.start() + 1] if match else text


def _list(what: str, full: bool = False) -> int:
    from .config import experiment_path, list_experiments, read_toml
    from .data import DATASETS, summary
    from .registry import MODELS

    out = []
    if what in ("all", "experiments"):
        rows = []
        for name in list_experiments():
            desc = read_toml(experiment_path(name)).get("experiment", {}).get("description", "")
            rows.append((name, desc if full else _first_sentence(desc)))
        out += ["experiments" + ("" if full else " (-v: full descriptions)") + ":",
                *_rows(rows)]
    if what in ("all", "models"):
        rows = [(name, (cls.__doc__ or "").strip().split("\n\n")[0])
                for name, cls in sorted(MODELS.items())]
        out += ["models:", *_rows(rows)]
    if what in ("all", "datasets"):
        rows = [(name, summary(name)) for name in DATASETS]
        out += ["datasets (details: autoencoders data list):", *_rows(rows)]
    print("\n".join(out))
    return 0


def _size(n_bytes: int | None) -> str:
    """Bytes in the unit that reads best: 28.9 KB, 9.9 MB, 1.4 GB."""
    if not n_bytes:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"


def _data(args) -> int:
    from . import data

    if args.data_cmd == "list":
        print("searched, in order: " + ", ".join(str(d) for d in data.data_dirs(args.data_dir)))
        rows = data.describe(args.data_dir)
        ds_w = max(len(r["dataset"]) for r in rows)
        file_w = max(len(r["file"]) for r in rows)
        print(f"{'dataset':{ds_w}s}  {'file':{file_w}s}  {'size':>8s}  where")
        for r in rows:
            print(f"{r['dataset']:{ds_w}s}  {r['file']:{file_w}s}  "
                  f"{_size(r['size_bytes']) if r['file'] != '-' else '':>8s}  {r['where']}")
        return 0
    paths = data.fetch(args.name, args.data_dir)
    for p in paths:
        print(f"ok  {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
