"""Nothing a user reads holds a path of the machine it was written on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# absolute paths of a developer's or CI machine: a home, root's home, the workplace, tmp
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users)/[\w.-]")
THIS = Path(__file__).relative_to(REPO).as_posix()


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.decode().split("\0") if p and p != THIS]


def test_no_machine_path_in_tracked_text_files():
    hits = []
    for path in _tracked_files():
        if path.suffix in (".png", ".safetensors", ".npz", ".gz", ".jpg") or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "machine paths (use paths relative to the repo):\n" + "\n".join(hits)


def test_no_machine_path_in_shipped_weights_metadata():
    from safetensors import safe_open

    files = sorted((REPO / "src" / "autoencoders" / "pretrained").glob("*.safetensors"))
    assert files
    for f in files:
        with safe_open(str(f), "pt") as h:
            meta = h.metadata() or {}
        for key, value in meta.items():
            assert not MACHINE_PATH.search(value), f"{f.name} metadata {key!r}: {value[:200]}"


def test_the_pattern_finds_what_it_should():
    assert MACHINE_PATH.search("--data-dir /work/shared/data")
    assert MACHINE_PATH.search('"source_run": "/tmp/ksae-runs/x"')
    assert not MACHINE_PATH.search("--data-dir ../shared/data")
    assert not MACHINE_PATH.search("https://example.org/work/x")
