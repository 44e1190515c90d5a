"""Stacked denoising autoencoder, SdA-L (Vincent, Larochelle, Bengio & Manzagol, ICML 2008,
section 3 and Figure 2).

An MLP of L sigmoid layers h_l = s(W_l h_{l-1} + b_l) (h_0 = x) and a softmax on top,
trained in stages (:meth:`StackedDAE.stages`):

* stage l = 1..L (greedy layer-wise pre-training): a denoising autoencoder on the codes of
  the layers below, which stay fixed. Its input h_{l-1} (clean) is corrupted with masking
  noise nu_l, encoded by layer l and decoded with tied weights, z = s(W_l^T h_l + c_l); the
  loss ``rec`` is the cross-entropy L_H(h_{l-1}, z) in nats (h_{l-1} in [0, 1]).
* stage 0 (supervised fine-tuning): the whole MLP plus a softmax layer, loss ``nll`` =
  -log p(y | x) in nats; the term ``error`` is the batch's error rate in % (reported, not
  optimised).

Each stage is a separate run; ``train.init_from`` points at the previous stage's run, so
fine-tuning starts from exactly the pre-trained weights (checked by a test). With
``pretrain = false`` the stages are just stage 0 from a random start: the paper's baseline
MLP. With every noise 0 the pre-training is the stacked ordinary autoencoder (SAA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Autoencoder, Loss
from .dae import mask_noise
from .nets import flat_dim


@dataclass
class StackedDAEConfig:
    model_name: ClassVar[str] = "sda"

    hidden: list[int] = field(default_factory=lambda: [1000, 1000, 1000])  # SdA-3
    noise: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])  # nu per layer
    num_classes: int = 10
    stage: int = 0  # 1..L: pre-train layer `stage`; 0: fine-tune the MLP with labels
    pretrain: bool = True  # false: stages() is only fine-tuning (the random-init baseline)
    pretrain_epochs: int = 10  # epochs of each pre-training stage
    pretrain_lr: float = 0.001  # learning rate of the pre-training stages
    finetune_lr: float = 0.0  # learning rate of fine-tuning; 0: train.lr (a sweep arm's own)
    init_std: float = 0.0  # weights ~ N(0, init_std^2); 0: uniform +-4 sqrt(6/(fan_in+fan_out))

    def validate(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"model.hidden = {self.hidden} must be a non-empty list of "
                              "layer widths >= 1, e.g. [1000, 1000, 1000].")
        if len(self.noise) != len(self.hidden):
            raise ConfigError(f"model.noise = {self.noise} needs one rate per layer of "
                              f"model.hidden = {self.hidden} ({len(self.hidden)} values).")
        if not all(0.0 <= nu < 1.0 for nu in self.noise):
            raise ConfigError(f"model.noise = {self.noise}: every rate must be in [0, 1).")
        if not 0 <= self.stage <= len(self.hidden):
            raise ConfigError(f"model.stage = {self.stage} must be 0 (fine-tuning) or a layer "
                              f"1..{len(self.hidden)} to pre-train.")
        if self.num_classes < 2:
            raise ConfigError(f"model.num_classes = {self.num_classes} must be >= 2.")
        if self.init_std < 0:
            raise ConfigError(f"model.init_std = {self.init_std} must be >= 0.")
        if not (self.finetune_lr >= 0 and math.isfinite(self.finetune_lr)):
            raise ConfigError(f"model.finetune_lr = {self.finetune_lr} must be > 0, or 0 to "
                              "use train.lr.")
        if self.pretrain_epochs < 1 or self.pretrain_lr <= 0:
            raise ConfigError(f"model.pretrain_epochs = {self.pretrain_epochs} must be >= 1 "
                              f"and model.pretrain_lr = {self.pretrain_lr} > 0.")


class StackedDAE(Autoencoder):
    """SdA-L: greedy layer-wise denoising pre-training, then a fine-tuned softmax MLP.

    ``model(x)`` is the first layer's tied reconstruction, sigmoid(W_1^T h_1 + c_1) (the
    classifier's output is ``classifier(features(x))``).
    """

    Config = StackedDAEConfig
    capabilities = frozenset({"filters", "labels", "stages"})
    loss_terms = {"error": "classification error, %",
                  "nll": "negative log-likelihood of the labels, nats",
                  "rec": "reconstruction cross-entropy of a pre-trained layer's input, nats"}

    def __init__(self, config: StackedDAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        sizes = [flat_dim(self.image_shape), *config.hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                      strict=True))
        self.decoder_biases = nn.ParameterList(nn.Parameter(torch.zeros(a)) for a in sizes[:-1])
        self.classifier = nn.Linear(sizes[-1], config.num_classes)
        for lin in [*self.layers, self.classifier]:
            if config.init_std:
                nn.init.normal_(lin.weight, 0.0, config.init_std)
            else:  # the range for sigmoid units (Glorot & Bengio 2010)
                bound = 4.0 * math.sqrt(6.0 / (lin.in_features + lin.out_features))
                nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.zeros_(lin.bias)

    @property
    def uses_labels(self) -> bool:
        """Only fine-tuning (stage 0) trains on labels."""
        return self.config.stage == 0

    @staticmethod
    def stages(config: StackedDAEConfig) -> list[tuple[str, dict[str, Any]]]:
        """The runs that make up training: ``[(label, overrides), ...]`` in order."""
        out = []
        if config.pretrain:
            out += [(f"pretrain-{layer}", {"model.stage": layer,
                                           "train.epochs": config.pretrain_epochs,
                                           "train.lr": config.pretrain_lr})
                    for layer in range(1, len(config.hidden) + 1)]
        finetune = {"model.stage": 0}
        if config.finetune_lr:
            finetune["train.lr"] = config.finetune_lr
        return out + [("finetune", finetune)]

    def encode(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """h_depth (default: the top layer), ``(B, C, H, W) -> (B, hidden[depth - 1])``."""
        h = x.flatten(1)
        for lin in self.layers[: len(self.layers) if depth is None else depth]:
            h = torch.sigmoid(lin(h))
        return h

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of the first layer's tied decoder: ``(B, hidden[0]) -> (B, C, H, W)``."""
        return (h @ self.layers[0].weight + self.decoder_biases[0]).reshape(-1, *self.image_shape)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Loss:
        stage = self.config.stage
        if stage == 0:
            logits = self.classifier(self.encode(x))
            nll = F.cross_entropy(logits, y)
            error = 100.0 * (logits.argmax(-1) != y).float().mean()
            return Loss(total=nll, terms={"nll": nll, "error": error.detach()})
        with torch.no_grad():  # the layers below are fixed during this stage
            h_in = self.encode(x, depth=stage - 1)
        nu = self.config.noise[stage - 1]
        corrupted = mask_noise(h_in, nu) if self.training else h_in
        lin = self.layers[stage - 1]
        code = torch.sigmoid(lin(corrupted))
        logits = code @ lin.weight + self.decoder_biases[stage - 1]  # tied decoder
        rec = F.binary_cross_entropy_with_logits(logits, h_in, reduction="none").sum(-1).mean()
        return Loss(total=rec, terms={"rec": rec})

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode(self.encode(x, depth=1)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def filters(self) -> torch.Tensor:
        """First-layer weights as images, ``(hidden[0], C, H, W)``."""
        return self.layers[0].weight.detach().reshape(-1, *self.image_shape)
