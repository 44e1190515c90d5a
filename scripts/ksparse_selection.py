"""How ksparse-classify's lr and epoch count were chosen (docs/REPRODUCTIONS.md).

Trains the k-sparse AE of ``ksparse-classify`` for each ``EPOCHS:LR`` given and prints, for
alpha in {2, 3, 4} and C in {0.01, 0.03, 0.1}, the validation error of the logistic
regression probe: the choice is made on it alone. The test split is never read here: the
chosen setting is the ksparse-classify profile, whose test error `autoencoders reproduce`
computes once.

    python scripts/ksparse_selection.py 5:0.001 20:0.001 20:0.0003 40:0.0003 \\
        --data-dir ../shared/data
"""

import argparse
import json
import time

import torch

import autoencoders as ae
from autoencoders.data.load import load_split
from autoencoders.evaluation.features import encode_dataset, logistic_regression_probe
from autoencoders.train import train

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("specs", nargs="+", help="EPOCHS:LR")
p.add_argument("--data-dir", default=None)
p.add_argument("--runs-dir", default="runs/ksparse-selection")
args = p.parse_args()
torch.set_num_threads(1)
for spec in args.specs:
    epochs, lr = spec.split(":")
    over = [f"train.epochs={epochs}", f"train.lr={lr}", "train.threads=1"]
    if args.data_dir:
        over.append(f'data.data_dir="{args.data_dir}"')
    cfg = ae.load_experiment("ksparse-classify", "quick", overrides=over)
    t = time.perf_counter()
    run = train(cfg, runs_dir=args.runs_dir, progress=False, log_epochs=False)
    train_s = time.perf_counter() - t
    model = run.load_model("last")
    sp = {s: load_split(cfg, s) for s in ("train", "valid")}
    for a in (2.0, 3.0, 4.0):
        z = {s: encode_dataset(model, d.x, alpha=a) for s, d in sp.items()}
        for C in (0.01, 0.03, 0.1):
            r = logistic_regression_probe(
                z["train"], sp["train"].y.numpy(), z["valid"], sp["valid"].y.numpy(),
                Cs=(C,), max_iter=1000)
            print(json.dumps({"epochs": int(epochs), "lr": float(lr), "alpha": a, "C": C,
                              "valid": r["valid_error"],
                              "train_s": round(train_s), "run": str(run.path)}), flush=True)
