"""Numbers tables generated from run folders (autoencoders.results, `autoencoders results`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autoencoders import results
from autoencoders.cli import main
from autoencoders.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory, shared_data):
    """A real two-seed reproduction of a tiny VAE (needs ../shared/data's MNIST)."""
    from autoencoders.config import load_experiment
    from autoencoders.pipeline import reproduce

    runs = tmp_path_factory.mktemp("runs")
    cfg = load_experiment("vae-mnist", "quick", [
        f'data.data_dir="{shared_data}"', "data.train_size=300", "data.valid_size=100",
        "train.epochs=1", "model.hidden=32", "eval.iw_samples=3", "eval.test_subset=50",
        "eval.figures=[]", "train.threads=1"])
    return reproduce(cfg, runs_dir=str(runs), progress=False, command="autoencoders test",
                     seeds=2)


def _rows(table: str) -> dict[str, list[str]]:
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) == 6 and cells[0] not in ("run", "---|---|---|---|---|---"):
            out[cells[1]] = cells
    return out


def test_every_number_in_the_table_is_the_runs_own(seeded_run):
    rep = results.collect(seeded_run.path)
    assert [r.seed for r in rep.records] == [0, 1]
    evals = [json.loads((seeded_run.path / f"seed{s}" / "eval.json").read_text())
             for s in (0, 1)]
    table = results.markdown(rep)
    rows = _rows(table)
    for key in ("test/elbo", "test/log_px"):
        values = [ev[key] for ev in evals]
        cells = rows[results._label(key)]
        mean, sd = results.stats(values)
        assert cells[2] == f"{mean:.2f} ± {sd:.2f} (2 seeds)"
        assert cells[3] == ", ".join(f"{v:.2f}" for v in values)
    assert rows[results._label("test/elbo")][4] == "-100.00 (unconfirmed)" or \
        rows[results._label("test/elbo")][4].endswith("(confirmed)")
    assert "Command: `autoencoders test`" in table
    steps = [json.loads(line) for line in
             (seeded_run.path / "seed0" / "metrics.jsonl").read_text().splitlines()][-1]
    assert f"{steps['samples']:,} samples" in table  # the budget actually trained
    report = (seeded_run.path / "report.md").read_text()
    assert table.splitlines()[2] in report  # the seeds report shows the same rows


def test_stats_are_mean_and_sample_standard_deviation():
    assert results.stats([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert results.stats([5.0]) == (5.0, 0.0)


def test_archive_update_and_check(seeded_run, tmp_path):
    archive = tmp_path / "results"
    assert main(["results", str(seeded_run.path), "--archive", str(archive)]) == 0
    stored = archive / "vae-mnist-quick.json"
    before = stored.read_bytes()
    with pytest.raises(UserError, match="--force"):
        results.archive(results.collect(seeded_run.path), archive)
    assert stored.read_bytes() == before
    # the archive keeps the reader's command: not where this machine put the run folder
    prov = results.collect(seeded_run.path).provenance
    prov["command"] = "autoencoders reproduce vae-mnist --runs-dir scratch --no-progress"
    again = results.Reproduction("vae-mnist", "P", "quick", prov)
    stored_again = results.archive(again, tmp_path / "other")
    assert json.loads(stored_again.read_text())["provenance"]["command"] == (
        "autoencoders reproduce vae-mnist")
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- results: vae-mnist-quick -->\nstale\n<!-- /results -->\n"
                   "<!-- results: summary -->\n<!-- /results -->\nend\n")
    args = ["results", "--update", str(doc), "--archive-dir", str(archive)]
    assert main([*args, "--check"]) == 1
    assert "stale" in doc.read_text()  # --check changes nothing
    assert main(args) == 0
    text = doc.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "| vae-mnist | test lower bound" in text
    assert re.search(r"\| Kingma & Welling \(ICLR 2014\) \| `autoencoders test` \| .*2 seeds", text)
    assert main([*args, "--check"]) == 0  # in sync now
    doc.write_text("<!-- results: nothing-archived -->\n<!-- /results -->\n")
    with pytest.raises(UserError, match="nothing-archived"):
        results.update([doc], archive)


def test_a_folder_without_evaluation_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        results.collect(tmp_path)


def test_docs_tables_are_generated_from_the_archived_runs():
    """README.md and docs/REPRODUCTIONS.md hold exactly what `autoencoders results --update`
    writes from results/*.json (regenerate with that command after archiving a run)."""
    files = [REPO / "README.md", REPO / "docs" / "REPRODUCTIONS.md"]
    assert results.update(files, REPO / "results", check=True) == []
    for f in files:
        assert results.BLOCK.search(f.read_text()), f"{f.name} has no generated block"


def test_baselines_table_averages_each_representation_over_runs():
    recs = [results.Record("beta4", s, {"test/beta_vae_metric": 80.0 + s,
                                        "baseline/pca/beta_vae_metric": 50.0 + 2 * s,
                                        "baseline/untrained/beta_vae_metric": 20.0 + s},
                           {}, {"epochs": 1, "samples": 10}) for s in (0, 1)]
    rep = results.Reproduction("x", "P", "quick", {}, recs)
    table = results.markdown(rep)
    assert "| PCA of the pixels, as many components as latents | 51.00 |" in table
    assert "| the model's network at its initial weights | 20.50 |" in table
    assert table.index("PCA") < table.index("initial weights")  # a fixed, readable order


def test_an_unfinished_seed_group_says_how_many_seeds_finished(seeded_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(seeded_run.path, copy)
    (copy / "provenance.json").unlink()  # as while the command still runs
    shutil.rmtree(copy / "seed1")
    assert "1 of the 2 seeds this command trains had finished" in results.markdown(
        results.collect(copy))  # the plan in seeds.json
    (copy / "seeds.json").unlink()  # a group from before seeds.json: N from its command
    (copy / "commands.log").write_text("2026-11-30 06:59:51  autoencoders reproduce vae-mnist "
                                       "--seeds 3\n")
    rep = results.collect(copy)
    assert [r.seed for r in rep.records] == [0]
    table = results.markdown(rep)
    assert "1 of the 3 seeds this command trains had finished" in table
    assert "Command: `autoencoders reproduce vae-mnist --seeds 3`" in table
    (copy / "seed0" / "provenance.json").unlink()
    with pytest.raises(UserError, match="No seed .* has finished yet"):
        results.collect(copy)


def test_the_site_shows_a_seed_group_by_its_first_seed(seeded_run):
    from autoencoders.site import find_runs

    assert find_runs([seeded_run.path])[0].path == seeded_run.path / "seed0"
    assert find_runs([seeded_run.path.parent])[0].path == seeded_run.path / "seed0"


def test_the_shown_command_drops_only_the_flags_that_change_what_it_prints_or_where():
    from autoencoders.results import shown_command

    cmd = ("autoencoders -q reproduce sbvae-mnist --profile quick --seeds 3 --data-dir "
           "../shared/data --set train.threads=1 --no-progress")
    assert shown_command(cmd) == ("autoencoders reproduce sbvae-mnist --profile quick "
                                  "--seeds 3 --data-dir ../shared/data --set train.threads=1")
    assert shown_command("autoencoders reproduce vae-mnist --set 'data.path=-v'") == (
        "autoencoders reproduce vae-mnist --set 'data.path=-v'")
    # where the run folder goes changes no number either
    assert shown_command("autoencoders reproduce vae-mnist --runs-dir scratch --profile full "
                         "--runs-dir=elsewhere --data-dir d") == (
        "autoencoders reproduce vae-mnist --profile full --data-dir d")


def test_summary_shows_a_headline_number_the_paper_does_not_report():
    ref = {"test/beta_vae_metric": {"headline": True, "source": "figures only"},
           "test/elbo": {"value": -100.0, "source": "Table 1", "status": "confirmed"}}
    recs = [results.Record("", s, {"test/beta_vae_metric": 80.0 + 2 * s, "test/elbo": -99.0},
                           ref, {"epochs": 1, "samples": 10}) for s in (0, 1)]
    rep = results.Reproduction("x", "Burgess et al., Understanding, arXiv 2018", "full",
                               {"command": "autoencoders reproduce x --seeds 2"}, recs)
    row = results.summary({"x": rep}).splitlines()[-1]
    assert row.startswith("| Burgess et al. (arXiv 2018) | `autoencoders reproduce x --seeds 2`")
    assert "81.00 ± 1.41 (2 seeds)" in row and "— (no number in the paper)" in row
    assert "elbo" not in row.lower() and "-100" not in row  # only the headline key
    assert "| — |" in results.markdown(rep)  # the per-experiment table leaves the paper blank
