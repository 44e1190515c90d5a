"""The results site: builder, escaping, explorers' data, and the pages in a real browser.

Tiny runs (300 images, one epoch, one thread) are trained on a synthetic 28x28 digit-like
data set registered for this module, so the browser tests need no downloaded data. They
drive headless Chromium (Debian's ``chromium`` and ``chromium-driver``) with selenium and
skip, saying why, when either is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from autoencoders.config import load_experiment
from autoencoders.errors import SiteError
from autoencoders.pipeline import reproduce
from autoencoders.runs import Run
from autoencoders.site import MARKER, build_site, find_runs, site_bytes
from autoencoders.site import explorer as ex

SYNTHETIC = "synthetic-digits"
TINY = [f'data.name="{SYNTHETIC}"', "data.train_size=300", "data.valid_size=100",
        "train.epochs=1", "train.threads=1", "eval.iw_samples=2", "eval.test_subset=100",
        "train.batch_size=50"]
HOSTILE = 'A <script>alert("x")</script> & <b>bold</b> description'


class SyntheticDigits:
    """Ten classes of 28x28 stroke patterns, each image shifted by up to 2 pixels: enough
    structure for one epoch to give a decoder whose images vary over the latent space."""

    name = SYNTHETIC
    image_shape = (1, 28, 28)
    num_classes = 10
    SIZES = {"train": 600, "valid": 100, "test": 300}

    @classmethod
    def load(cls, split, *, binarize="none", first=0, **_):
        g = torch.Generator().manual_seed(0)
        t = torch.linspace(0, 1, 40)
        protos = torch.zeros(10, 28, 28)
        for c in range(10):  # two random strokes per class
            for _ in range(2):
                (r0, c0), (r1, c1) = torch.randint(5, 23, (2, 2), generator=g).tolist()
                rows = (r0 + (r1 - r0) * t).round().long()
                cols = (c0 + (c1 - c0) * t).round().long()
                for dr in (0, 1):
                    protos[c, (rows + dr).clamp(0, 27), cols] = 1.0
        n = cls.SIZES[split]
        g = torch.Generator().manual_seed({"train": 1, "valid": 2, "test": 3}[split])
        y = torch.randint(0, 10, (n,), generator=g)
        shifts = torch.randint(-2, 3, (n, 2), generator=g).tolist()
        x = torch.stack([protos[c].roll(tuple(sh), dims=(0, 1)) for c, sh in
                         zip(y.tolist(), shifts, strict=True)]).unsqueeze(1)
        if first:
            x, y = x[:first], y[:first]
        from autoencoders.data import ImageData

        applied = "static" if binarize == "dynamic" and split != "train" else binarize
        return ImageData(name=cls.name, split=split, x=x, y=y, binarize=applied)


@pytest.fixture(scope="module", autouse=True)
def synthetic_data():
    from autoencoders import data

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(data.DATASETS, SYNTHETIC, SyntheticDigits)
        yield


def _run(tmp, name, *extra, description=None):
    cfg = load_experiment(name, "quick", [*TINY, *extra])
    cfg = dataclasses.replace(cfg, sweep=None)
    if description is not None:
        cfg = dataclasses.replace(cfg, description=description)
    return reproduce(cfg, runs_dir=str(tmp), progress=False,
                     command=f"autoencoders reproduce {name} (tiny test run)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs, one per kind of explorer, and one without a latent space."""
    tmp = tmp_path_factory.mktemp("runs")
    # PyTorch's default init (not N(0, 0.01)): one epoch already gives images that vary
    plane = _run(tmp, "vae-mnist-2d", "model.init_std=0", "train.lr=0.003",
                 description=HOSTILE)
    sticks = _run(tmp, "sbvae-mnist", "model.truncation=8", "model.hidden=32",
                  "eval.metrics=[]")
    frames = _run(tmp, "vae-mnist-2d", 'model.arch="conv"', "model.latent_dim=4",
                  "model.conv_channels=[8, 8]", "model.conv_fc=16", "eval.figures=[]")
    dae = _run(tmp, "dae-filters", "model.hidden=16")  # no latent space
    return {"plane": plane, "sliders": sticks, "frames": frames, "dae": dae, "dir": tmp}


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    build_site([runs[k].path for k in ("plane", "sliders", "frames", "dae")], out)
    return out


def _sources(page: str) -> list[str]:
    """The files a page's ``src`` attributes point at (URL-decoded, as a browser does)."""
    from urllib.parse import unquote

    return [unquote(s.split('"')[0]) for s in page.split('src="')[1:]]


def _explorer_data(site, slug):
    text = (site / "data" / f"{slug}.js").read_text()
    prefix = f"AE.register({json.dumps(slug)},"
    assert text.startswith(prefix)
    return json.loads(text[len(prefix):].rstrip().rstrip(";").rstrip(")"))


# ------------------------------------------------------------------ builder, no browser


def test_site_has_every_page_figure_and_explorer(runs, site):
    index = (site / "index.html").read_text()
    slugs = json.loads((site / MARKER).read_text())["pages"]
    assert slugs == ["vae-mnist-2d", "sbvae-mnist", "vae-mnist-2d-2", "dae-filters"]
    for slug in slugs:
        assert f'href="{slug}/index.html"' in index
        page = (site / slug / "index.html").read_text()
        assert "<h2>Provenance</h2>" in page and "command" in page
        for src in _sources(page):
            assert (site / slug / src).is_file(), src  # every image and script resolves
    dae = (site / "dae-filters" / "index.html").read_text()
    assert "Explore the latent space" not in dae and "<script" not in dae
    assert "filters.png" in dae
    kinds = {slug: _explorer_data(site, slug)["kind"] for slug in slugs[:3]}
    assert kinds == {"vae-mnist-2d": "plane", "sbvae-mnist": "sliders",
                     "vae-mnist-2d-2": "frames"}
    figures = sorted(p.name for p in (site / "vae-mnist-2d" / "figures").iterdir())
    assert figures == sorted(p.name for p in (runs["plane"].path / "figures").iterdir())
    # the index card shows the report's numbers: our ELBO as written in report.md
    ours = json.loads((runs["plane"].path / "eval.json").read_text())["test/elbo"]
    assert f"{ours:.2f}" in index
    assert "http://" not in index and "https://" not in index  # nothing from the network
    assert site_bytes(site) < 5e6


def test_user_text_is_escaped(site):
    page = (site / "vae-mnist-2d" / "index.html").read_text()
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_a_sweeps_page_keeps_to_its_decoder_budget(tmp_path, monkeypatch):
    import autoencoders.site as site_module

    cfg = load_experiment("vae-frey-nz-sweep", "quick", [*TINY, "model.hidden=20",
                                                          'eval.figures=["traversals"]'])
    parent = reproduce(cfg, runs_dir=str(tmp_path / "runs"), progress=False)
    children = [Run.load(p.parent) for p in sorted(parent.path.glob("*/config.json"))]
    sizes = {c.config.model.latent_dim: ex.live_params(c.load_model()) for c in children}
    # room for the N_z=2 and N_z=5 decoders only: the others get traversal frames
    monkeypatch.setattr(site_module, "PAGE_LIVE_PARAMS", sizes[2] + sizes[5])
    out = tmp_path / "site"
    build_site([parent.path], out)
    kinds = [_explorer_data(out, f"vae-frey-nz-sweep-{i}")["kind"] for i in range(4)]
    assert kinds == ["plane", "sliders", "frames", "frames"]
    page = (out / "vae-frey-nz-sweep" / "index.html").read_text()
    for label in ("N_z=2", "N_z=5", "N_z=10", "N_z=20"):
        assert f"<h3>{label}</h3>" in page
        assert f"figures/{label.replace('=', '%3D')}/traversals.png" in page
    for src in _sources(page):  # labels in paths are URL-encoded and resolve
        assert (out / "vae-frey-nz-sweep" / src).is_file(), src


def test_report_parsing_and_card_rows():
    from autoencoders.site.pages import Table, headline, inline, report_sections

    text = "\n".join([
        "# x", "## Numbers", "", "| quantity | ours | paper | paper's source |",
        "|---|---|---|---|", "| test loss | 1.00 | — |  |",
        "| test log p(x) | -90.1 | -89.0 | T1 |",
        "", "Evaluation took 3 s.", "## Provenance", "- command: `ae <x> & y`"])
    sections = report_sections(text)
    table = sections["Numbers"].blocks[0]
    assert isinstance(table, Table) and table.header[1] == "ours" and len(table.rows) == 2
    assert sections["Numbers"].blocks[1] == "Evaluation took 3 s."
    assert headline(table, 1).rows == [["test log p(x)", "-90.1", "-89.0", "T1"]]
    assert inline(sections["Provenance"].blocks[0]) == \
        "- command: <code>ae &lt;x&gt; &amp; y</code>"
    assert inline("[N_z=3](N_z%3D3/report.md) **b<**") == "N_z=3 <strong>b&lt;</strong>"


def test_refuses_a_folder_that_is_not_a_site(runs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(SiteError, match="--force"):
        build_site([runs["plane"].path], mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    build_site([runs["plane"].path], mine, force=True)
    assert (mine / "thesis.tex").is_file() and (mine / "index.html").is_file()
    (mine / "thesis.tex").unlink()
    (mine / "stale.html").write_text("old")  # a site folder is replaced as a whole
    build_site([runs["plane"].path], mine)
    assert not (mine / "stale.html").exists()


def test_cli_site_and_run_discovery(runs, tmp_path, capsys):
    from autoencoders.cli import main

    out = tmp_path / "s"
    assert main(["site", str(runs["dir"]), "--out", str(out)]) == 0
    assert "MB" in capsys.readouterr().out
    # a folder of runs: the newest run of each experiment
    names = sorted(r.config.name for r in find_runs([runs["dir"]]))
    assert names == ["dae-filters", "sbvae-mnist", "vae-mnist-2d"]
    assert main(["site", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err


def test_exported_decoder_is_the_models(runs):
    """The exported layers, run in numpy, give PyTorch's decoded means (fp16 or fp32)."""
    for key in ("plane", "sliders"):
        model = runs[key].load_model()
        spec = ex.decoder_spec(model)
        raw = np.frombuffer(__import__("base64").b64decode(spec["data"]),
                            np.float16 if spec["dtype"] == "float16" else np.float32)
        latent = (torch.rand(5, model.latent_dim - 1) if key == "sliders"
                  else torch.randn(5, model.latent_dim))
        x = (ex.sticks_to_input(model, latent) if key == "sliders" else latent).numpy()
        at = 0
        for (n_out, n_in), act in zip(spec["shapes"], spec["activations"], strict=True):
            w = raw[at:at + n_out * n_in].astype(np.float32).reshape(n_out, n_in)
            b = raw[at + n_out * n_in: at + n_out * n_in + n_out].astype(np.float32)
            at += n_out * n_in + n_out
            x = x @ w.T + b
            x = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
                 "identity": lambda v: v}[act](x)
        assert at == raw.size
        ours = 1 / (1 + np.exp(-x))
        np.testing.assert_allclose(ours, ex.image_of(model, latent).numpy(), atol=1 / 255)


def test_gaussian_decoder_exports_only_the_means():
    """Frey Face's Gaussian decoder: the log-variance rows are dropped, the means kept."""
    from autoencoders.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, hidden=16, likelihood="gaussian", init_std=0.0),
                (1, 28, 20)).eval()
    spec = ex.decoder_spec(model)
    assert spec["shapes"] == [[16, 2], [28 * 20, 16]] and spec["activations"] == ["tanh",
                                                                                   "identity"]
    raw = np.frombuffer(__import__("base64").b64decode(spec["data"]),
                        np.float16 if spec["dtype"] == "float16" else np.float32)
    w1, b1 = raw[:32].reshape(16, 2), raw[32:48]
    w2, b2 = raw[48:48 + 560 * 16].reshape(560, 16), raw[48 + 560 * 16:]
    z = torch.randn(3, 2)
    h = np.tanh(z.numpy() @ w1.T.astype(np.float32) + b1)
    ours = 1 / (1 + np.exp(-(h @ w2.T.astype(np.float32) + b2)))
    np.testing.assert_allclose(ours, ex.image_of(model, z).numpy(), atol=1 / 255)


def test_sticks_to_input_is_the_models_stick_breaking(runs):
    from autoencoders.models.sbvae import log1mexp, stick_breaking_log

    model = runs["sliders"].load_model()
    v = torch.rand(4, model.latent_dim - 1) * 0.98 + 0.01
    pi = stick_breaking_log(v.log(), log1mexp(v.log())).exp()
    torch.testing.assert_close(ex.sticks_to_input(model, v),
                               pi * model.config.decoder_input_scale)
    torch.testing.assert_close(ex.image_of(model, v).reshape(4, *model.image_shape),
                               model.lik.mean(model.decode(pi)))


# ------------------------------------------------------------------ in Chromium


def _driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("headless Chromium not installed: `apt-get install chromium "
                    "chromium-driver` (.ci/run installs them) to run the browser tests")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


@pytest.fixture(scope="module")
def browser():
    driver = _driver()
    yield driver
    driver.quit()


def _open(browser, path):
    browser.get(path.as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _no_errors(browser):
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    assert browser.execute_script("return (window.AE && AE.errors) || []") == []


def _state(browser, slug):
    return browser.execute_script(
        "var e = AE.explorers[arguments[0]];"
        "return {z: Array.from(e.z), px: e.pixels()};", slug)


def _matches_pytorch(model, state):
    latent = torch.tensor([state["z"]], dtype=torch.float32)
    want = ex.image_of(model, latent)[0].numpy() * 255
    got = np.array(state["px"], dtype=np.float64)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 2.0, np.abs(got - want).max()  # 2/255 per pixel


def test_pages_load_without_errors(browser, site):
    _open(browser, site / "index.html")
    _no_errors(browser)
    for slug in json.loads((site / MARKER).read_text())["pages"]:
        _open(browser, site / slug / "index.html")
        _no_errors(browser)
        if slug == "dae-filters":  # no latent space: a page without scripts
            assert browser.execute_script("return window.AE === undefined")
            continue
        assert browser.execute_script("return document.documentElement.dataset.ready") == "1"
        ready = browser.execute_script("return AE.readyAt")
        assert 0 < ready < 3000, ready  # interactive within 3 s even on a busy CI machine


def test_site_works_behind_a_static_server(browser, site):
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request lines in the test output
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/sbvae-mnist/index.html")
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.documentElement.dataset.ready"))
        assert browser.execute_script("return Object.keys(AE.explorers)") == ["sbvae-mnist"]
        _no_errors(browser)
    finally:
        server.shutdown()
        server.server_close()


def test_plane_decodes_like_pytorch(browser, site, runs):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    model = runs["plane"].load_model()
    _open(browser, site / "vae-mnist-2d" / "index.html")
    plane = browser.find_element(By.CSS_SELECTOR, ".ex-plane")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
    states = []
    for dx, dy in ((-100, -90), (110, 70)):  # offsets from the plane's centre, in CSS px
        ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
        states.append(_state(browser, "vae-mnist-2d"))
    (z0, z1), (z2, z3) = states[0]["z"], states[1]["z"]
    assert z0 < -1 and z1 > 1 and z2 > 1 and z3 < -1  # right is +z1, up is +z2
    assert states[0]["px"] != states[1]["px"]  # the canvas changed
    for state in states:
        _matches_pytorch(model, state)
    _no_errors(browser)


def test_sliders_and_strip_decode_like_pytorch(browser, site, runs):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    model = runs["sliders"].load_model()
    _open(browser, site / "sbvae-mnist" / "index.html")
    before = _state(browser, "sbvae-mnist")
    _matches_pytorch(model, before)
    slider = browser.find_elements(By.CSS_SELECTOR, ".ex-slider input")[0]
    slider.send_keys(Keys.END)  # v1 = 1: all the weight on the first stick
    after = _state(browser, "sbvae-mnist")
    assert after["z"][0] == 1.0 and after["px"] != before["px"]
    _matches_pytorch(model, after)
    strip = browser.find_element(By.CSS_SELECTOR, ".ex-strip-img")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", strip)
    width = strip.size["width"]
    ActionChains(browser).move_to_element_with_offset(strip, -width // 2 + 3, 0).click().perform()
    picked = _state(browser, "sbvae-mnist")
    data = _explorer_data(site, "sbvae-mnist")
    np.testing.assert_allclose(picked["z"], data["strip"]["codes"][0], atol=1e-6)
    _matches_pytorch(model, picked)
    _no_errors(browser)


def test_frames_follow_the_sliders(browser, site, runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, site / "vae-mnist-2d-2" / "index.html")
    first = _state(browser, "vae-mnist-2d-2")
    sliders = browser.find_elements(By.CSS_SELECTOR, ".ex-slider input")
    assert len(sliders) == 4
    sliders[0].send_keys(Keys.HOME)
    low = _state(browser, "vae-mnist-2d-2")
    sliders[0].send_keys(Keys.END)
    high = _state(browser, "vae-mnist-2d-2")
    assert browser.execute_script("return AE.explorers['vae-mnist-2d-2'].frame") == [0, 10]
    assert low["px"] != high["px"] and first["px"] != high["px"]
    # the frame is PyTorch's decoded image: the first test image's code, the top-KL
    # latent at +3
    from autoencoders.train import load_split
    from autoencoders.traversal_plots import traversal_images

    run = runs["frames"]
    model = run.load_model()
    top = _explorer_data(site, "vae-mnist-2d-2")["sliders"][0]["index"]
    want = traversal_images(model, load_split(run.config, "test").x[:1], [top], 11, 3.0)
    want = (want[0, 0, 10].flatten().numpy() * 255).round()
    assert np.abs(np.array(high["px"]) - want).max() <= 1
    _no_errors(browser)


# ------------------------------------------------------------------ readable figures


def test_side_by_side_captions_are_large_and_panels_apart(tmp_path):
    from PIL import Image

    from autoencoders.plots import side_by_side

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (600, 300), "black").save(paths[-1])
    out = np.asarray(Image.open(side_by_side(paths, ["k=10", "noise=25%"], tmp_path / "o.png"))
                     .convert("L"))
    size = 30  # 5 % of 600 px
    caption = out[: int(size * 1.5)]
    rows = np.nonzero((caption < 128).any(1))[0]
    assert rows.max() - rows.min() >= 0.6 * size  # a real font at the requested size
    body = out[int(size * 1.5) + 10]  # a row through both images
    light = np.nonzero(body > 100)[0]
    gaps = np.split(light, np.nonzero(np.diff(light) > 1)[0] + 1)
    inner = [g for g in gaps if 0 < g[0] and g[-1] < out.shape[1] - 1]
    assert inner and min(len(g) for g in inner) >= 2  # panels separated by >= 2 px


def test_traversals_keep_a_pixel_per_grid_pixel_and_pca_titles_differ(runs, tmp_path):
    from PIL import Image

    from autoencoders.latent_plots import _codes_name
    from autoencoders.traversal_plots import plot_traversals

    model = runs["plane"].load_model()
    x = torch.rand(20, 1, 28, 28)
    path = plot_traversals(model, x[:3], x, tmp_path / "t.png", n_steps=10)
    grid_width = 3 * 11 * (28 + 2)  # three panels of 10 steps, a blank tile between
    assert Image.open(path).width >= grid_width
    assert _codes_name(runs["sliders"].load_model()) != _codes_name(model)


def test_reproduce_all_ends_with_the_site(tmp_path, monkeypatch):
    import autoencoders.config as config
    from autoencoders.pipeline import reproduce_all

    real = config.load_experiment
    monkeypatch.setattr(config, "list_experiments", lambda: ["vae-mnist-2d"])
    monkeypatch.setattr(config, "load_experiment", lambda name, profile, overrides=():
                        real(name, profile, [*overrides, *TINY]))
    reproduce_all("quick", runs_dir=str(tmp_path), progress=False)
    site = tmp_path / "site"
    assert json.loads((site / MARKER).read_text())["pages"] == ["vae-mnist-2d"]
    assert (site / "data" / "vae-mnist-2d.js").is_file()
