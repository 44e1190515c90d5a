"""Command line: a thin layer over the library.

    autoencoders list [experiments|models|datasets]
    autoencoders train EXPERIMENT [--profile quick|full] [--set key=value ...] [--tensorboard]
    autoencoders train --resume RUN
    autoencoders evaluate RUN [--set eval.iw_samples=1000]
    autoencoders reproduce EXPERIMENT [--profile quick|full] [--set key=value ...] [--tensorboard]
    autoencoders plot RUN
    autoencoders report RUN
    autoencoders export RUN NAME [--out-dir DIR] [--force]
    autoencoders runs [DIR]
    autoencoders data list | fetch NAME
    autoencoders site [RUN ...] [--out site] [--force]

Bad input (an unknown key, a missing file, a damaged checkpoint) prints one paragraph
and exits with status 2; there is no traceback for a user error.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .errors import UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autoencoders",
        description="Reproduce classic autoencoder papers: DAE, k-sparse AE, VAE, "
                    "stick-breaking VAE, beta-VAE.",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def common(sp, experiment: bool = True):
        if experiment:
            sp.add_argument("--profile", default=None, choices=["quick", "full"],
                            help="quick (default): CPU minutes; full: the paper's budget")
        sp.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5")
        sp.add_argument("--data-dir", default=None,
                        help="folder with the data files (else $AUTOENCODERS_DATA, else the "
                             "user cache)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")

    def tensorboard_flag(sp):
        sp.add_argument("--tensorboard", action="store_true",
                        help="also log the loss terms (and, after plotting, the figures) "
                             "into RUN/tensorboard (train.tensorboard = true; needs "
                             "`pip install autoencoders[tensorboard]`)")

    sp = sub.add_parser("list", help="list experiments, models and datasets")
    sp.add_argument("what", nargs="?", default="all",
                    choices=["all", "experiments", "models", "datasets"])

    sp = sub.add_parser("train", help="train an experiment's model into a new run folder")
    sp.add_argument("experiment", nargs="?", help="experiment name or .toml path")
    sp.add_argument("--resume", metavar="RUN", help="continue a run from its last checkpoint")
    sp.add_argument("--runs-dir", default="runs")
    tensorboard_flag(sp)
    common(sp)

    sp = sub.add_parser("reproduce",
                        help="train, evaluate, plot and report an experiment in one go")
    sp.add_argument("experiment", help="experiment name, a .toml path, or 'all'")
    sp.add_argument("--runs-dir", default="runs")
    sp.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="train N seeds (train.seed, +1, ...) and report mean, standard "
                         "deviation and every seed's value (default 1)")
    tensorboard_flag(sp)
    common(sp)

    sp = sub.add_parser("results", help="numbers tables generated from run folders")
    sp.add_argument("runs", nargs="*", metavar="RUN",
                    help="folders printed by `autoencoders reproduce` (single, sweep or seeds)")
    sp.add_argument("--archive", metavar="DIR", default=None,
                    help="also store each run's records (JSON, no weights) as "
                         "DIR/<experiment>-<profile>.json")
    sp.add_argument("--update", metavar="FILE", nargs="+", default=None,
                    help="rewrite the <!-- results: NAME --> blocks of FILE from the archive")
    sp.add_argument("--archive-dir", default="results",
                    help="where --update reads archived records (default: results)")
    sp.add_argument("--check", action="store_true",
                    help="with --update: change nothing, exit 1 if a block is out of date")
    sp.add_argument("--force", action="store_true",
                    help="replace an archived record of the same experiment and profile")

    sp = sub.add_parser("evaluate", help="test-set numbers of a run -> eval.json")
    sp.add_argument("run")
    common(sp, experiment=False)

    for name, text in (("plot", "draw a run's figures"), ("report", "write a run's report.md")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("run")

    sp = sub.add_parser("export", help="save a run's model as a small pretrained file")
    sp.add_argument("run")
    sp.add_argument("name", help="name for ae.pretrained(NAME)")
    sp.add_argument("--out-dir", default=None,
                    help="folder for NAME.safetensors (default: RUN/export); load it with "
                         "ae.pretrained(PATH)")
    sp.add_argument("--force", action="store_true", help="replace an existing file")

    sp = sub.add_parser("runs", help="list run folders and their status (done, "
                                     "interrupted, failed)")
    sp.add_argument("dir", nargs="?", default="runs", help="default: runs")

    sp = sub.add_parser("site", help="build the static results website from run folders")
    sp.add_argument("runs", nargs="*", default=["runs"], metavar="RUN",
                    help="run folders or folders of runs (newest run per experiment); "
                         "default: runs")
    sp.add_argument("--out", default="site", help="the site's folder (default: site)")
    sp.add_argument("--force", action="store_true",
                    help="write into a non-empty folder that is not a site")
    sp.add_argument("--data-dir", default=None,
                    help="folder with the data files (the explorers show test images)")

    sp = sub.add_parser("data", help="list or download datasets")
    dsub = sp.add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="datasets, their files, and whether they are present")
    dl.add_argument("--data-dir", default=None)
    df = dsub.add_parser("fetch", help="download and verify a dataset")
    df.add_argument("name")
    df.add_argument("--data-dir", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autoencoders`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    command = "autoencoders " + " ".join(shlex.quote(a) for a in argv)
    try:
        return _dispatch(args, command)
    except UserError as e:
        print(_printable(f"autoencoders: error: {e}"), file=sys.stderr)
        return 2
    except OSError as e:  # a file the library did not expect to fail: name it, no traceback
        where = f" ({e.filename})" if e.filename else ""
        print(_printable(f"autoencoders: error: {e.strerror or e}{where}. Check that the file "
                         "or folder exists, is readable (and writable for run folders), and "
                         "that the disk has free space."), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoencoders: interrupted.", file=sys.stderr)
        return 130


def _printable(text: str) -> str:
    """``text`` with the undecodable bytes of a non-UTF-8 path shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _overrides(args) -> list[str]:
    out = list(args.overrides)
    if getattr(args, "data_dir", None):
        out.append(f"data.data_dir={_toml_str(args.data_dir)}")
    if getattr(args, "tensorboard", False):
        out.append("train.tensorboard=true")
    return out


def _require_tensorboard(cfg) -> None:
    """Fail before any run folder is made when TensorBoard is asked for but absent."""
    if cfg.train.tensorboard:
        from .tensorboard_log import require

        require()


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dispatch(args, command: str) -> int:
    from .config import load_experiment

    progress = not getattr(args, "no_progress", False)
    if args.cmd == "list":
        return _list(args.what)
    if args.cmd == "data":
        return _data(args)
    if args.cmd == "train":
        from . import distributed
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
            _require_tensorboard(run.config)
            distributed.setup(run.config.train.device)
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
            distributed.setup(cfg.train.device)  # joins torchrun's process group, if any
            run = create_run(cfg, args.runs_dir)
            with _locked(run):
                if distributed.is_main():
                    run.log_command(command)
                run = train_stages(cfg, run, progress=progress)
        distributed.cleanup()
        if distributed.is_main():
            print(_printable(f"run folder: {run.path}"))
        return 0
    if args.cmd == "reproduce":
        from .pipeline import reproduce, reproduce_all

        if args.experiment == "all":
            if args.tensorboard:
                raise UserError("--tensorboard applies to one experiment (reproduce "
                                "EXPERIMENT --tensorboard); `reproduce all` runs the "
                                "experiments as shipped.")
            index = reproduce_all(args.profile or "quick", args.runs_dir, progress,
                                  args.data_dir,
                                  command=command)
            print(f"index: {index}")
            return 0
        cfg = load_experiment(args.experiment, args.profile or "quick", _overrides(args))
        _require_tensorboard(cfg)
        run = reproduce(cfg, runs_dir=args.runs_dir, progress=progress, command=command,
                        seeds=args.seeds)
        if cfg.train.tensorboard:  # figures were mirrored there by pipeline.plot
            print(f"tensorboard: tensorboard --logdir {run.path}")
        print(_printable(f"report: {run.path / 'report.md'}"))
        return 0
    if args.cmd == "results":
        return _results(args)
    if args.cmd == "evaluate":
        import json

        from .pipeline import evaluate
        from .runs import Run

        run = Run.load(args.run)
        if args.overrides or args.data_dir:
            run.config = _apply_eval_overrides(run, _overrides(args))
        with run.lock():
            run.log_command(command)
            print(json.dumps(evaluate(run, progress=progress), indent=2))
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
    if args.cmd == "site":
        from .site import build_site, site_bytes

        index = build_site(args.runs, args.out, force=args.force, data_dir=args.data_dir)
        print(f"site: {index} ({site_bytes(args.out) / 1e6:.1f} MB; open it in a browser)")
        return 0
    if args.cmd == "export":
        from .pretrained import export
        from .runs import Run

        print(_printable(str(export(Run.load(args.run), args.name, args.out_dir,
                                           force=args.force))))
        return 0
    if args.cmd == "runs":
        return _runs(args.dir)
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


def _list(what: str) -> int:
    from .config import experiment_path, list_experiments, read_toml
    from .data import DATASETS
    from .registry import MODELS

    if what in ("all", "experiments"):
        print("experiments:")
        for name in list_experiments():
            desc = read_toml(experiment_path(name)).get("experiment", {}).get("description", "")
            first = desc.strip().splitlines()[0][:70] if desc.strip() else ""
            print(f"  {name:24s} {first}")
    if what in ("all", "models"):
        print("models:")
        for name, cls in sorted(MODELS.items()):
            doc = (cls.__doc__ or "").strip().splitlines()[0]
            print(f"  {name:24s} {doc}")
    if what in ("all", "datasets"):
        print("datasets:")
        for name in sorted(DATASETS):
            print(f"  {name}")
    return 0


def _data(args) -> int:
    from . import data

    if args.data_cmd == "list":
        print("searched, in order: " + ", ".join(str(d) for d in data.data_dirs(args.data_dir)))
        print(f"{'dataset':15s} {'file':32s} {'size':>10s}  present")
        for row in data.status(args.data_dir):
            size = f"{row['size_bytes'] / 1e6:.1f} MB" if row.get("size_bytes") else "?"
            where = str(row["path"]) if row["present"] else "missing"
            print(f"{row['dataset']:15s} {row['file']:32s} {size:>10s}  {where}")
        return 0
    paths = data.fetch(args.name, args.data_dir)
    for p in paths:
        print(f"ok  {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
