"""Screenshots of a results site's latent explorer, taken by headless Chromium, and the
first page's time to interactive measured in the browser.

    autoencoders reproduce vae-mnist-2d --profile quick
    autoencoders site runs/vae-mnist-2d --out site
    python scripts/site_screenshots.py site/vae-mnist-2d/index.html docs/figures

Writes ``site-explorer.png`` (the explorer with the pointer at three points of the latent
plane, side by side) and ``site-index.png`` (palette PNGs, kept small for the README), and
prints the load timings measured by the browser. Needs ``chromium``,
``chromium-driver`` and ``selenium`` (the dev extra).
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

POINTS = ((-0.3, 0.35), (0.0, 0.0), (0.3, -0.05))  # plane fractions from its centre


def driver(width: int = 1100, height: int = 900) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def main(page: str, out_dir: str) -> None:
    page_path, out = Path(page).resolve(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = driver()
    try:
        d.get(page_path.as_uri())
        t = d.execute_script(
            "var n = performance.getEntriesByType('navigation')[0];"
            "return {interactive: n.domInteractive, loaded: n.loadEventEnd,"
            "        explorer_ready: AE.readyAt};")
        print(f"{page_path.name}: DOM interactive {t['interactive']:.0f} ms, explorer ready "
              f"{t['explorer_ready']:.0f} ms, load event {t['loaded']:.0f} ms")
        box = d.find_element(By.CSS_SELECTOR, ".ex-view")
        plane = d.find_element(By.CSS_SELECTOR, ".ex-plane")
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        w = plane.size["width"]
        shots = []
        for fx, fy in POINTS:
            ActionChains(d).move_to_element_with_offset(plane, int(fx * w), int(fy * w)).perform()
            shots.append(Image.open(io.BytesIO(box.screenshot_as_png)).convert("RGB"))
        d.get((page_path.parent.parent / "index.html").as_uri())
        d.set_window_size(1000, 640)
        index = Image.open(io.BytesIO(d.get_screenshot_as_png())).convert("RGB")
    finally:
        d.quit()
    gap = 24
    strip = Image.new("RGB", (sum(s.width for s in shots) + gap * (len(shots) - 1),
                              max(s.height for s in shots)), "white")
    for i, shot in enumerate(shots):
        strip.paste(shot, (i * (shot.width + gap), 0))
    strip = strip.resize((strip.width * 2 // 3, strip.height * 2 // 3), Image.LANCZOS)
    for img, name in ((strip, "site-explorer.png"), (index, "site-index.png")):
        img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(out / name, optimize=True)
        print(out / name)


if __name__ == "__main__":
    main(*sys.argv[1:3])
