"""Start-up time of the command line: ``autoencoders --help`` (target: under 1 s).

The CLI imports nothing heavy (PyTorch, numpy) before it has parsed its arguments, so
help and argument errors come back at once. Prints the median wall time of ``--repeats``
fresh processes, and whether torch was imported.

    python benchmarks/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="fresh processes to time")
    args = p.parse_args()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autoencoders", "--help"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    probe = ("import sys, autoencoders.cli as c\n"
             "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, file=sys.stderr)")
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                  text=True).stderr.strip()
    print(f"autoencoders --help: median {statistics.median(times):.3f} s over "
          f"{args.repeats} runs (min {min(times):.3f} s); torch imported: {torch_loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
