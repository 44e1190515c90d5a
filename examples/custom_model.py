"""Your own model: subclass, register, train with the same trainer, configs and reports.
Run: python examples/custom_model.py [--data-dir ../shared/data] [--epochs 1]"""
import argparse
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

import autoencoders as ae
from autoencoders.models.base import Autoencoder, Loss
from autoencoders.models.nets import Unflatten, mlp

@dataclass
class PlainAEConfig:
    model_name: ClassVar[str] = "plain-ae"
    hidden: int = 64  # size of the code


@ae.register_model
class PlainAE(Autoencoder):
    """A plain autoencoder: sigmoid code, Bernoulli cross-entropy reconstruction."""

    Config = PlainAEConfig

    def __init__(self, config, image_shape):
        super().__init__(config, image_shape)
        d = image_shape[0] * image_shape[1] * image_shape[2]
        self.encoder = mlp([d, config.hidden], final_act="sigmoid")
        self.decoder = torch.nn.Sequential(mlp([config.hidden, d]), Unflatten(image_shape))

    def encode(self, x):
        return self.encoder(x.flatten(1))

    features = encode

    def decode(self, z):
        return self.decoder(z)  # logits

    def loss(self, x):
        logits = self.decode(self.encode(x))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        return Loss(total=rec.mean(), terms={"rec": rec.mean()})

    def reconstruct(self, x):
        return torch.sigmoid(self.decode(self.encode(x)))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=None), p.add_argument("--runs-dir", default="runs")
    p.add_argument("--epochs", type=int, default=1), p.add_argument("--train-size", default=0)
    args = p.parse_args()
    cfg = ae.load_experiment("vae-mnist", overrides={  # its data and train sections
        "model": {"name": "plain-ae", "hidden": 64}, "train.epochs": args.epochs,
        "eval.iw_samples": 0, "eval.figures": ["reconstructions"], "data.data_dir": args.data_dir,
        "data.train_size": int(args.train_size)})
    run = ae.reproduce(cfg, runs_dir=args.runs_dir, progress=False)
    print(f"test reconstruction: {run.eval_results()['test/rec']:.1f} nats, {run.path}")
