"""``Transformer``: an encoder of torch's own layers (``nn.TransformerEncoder``, batch first, pre-norm) on the
torch engine, for two kinds of input:

- **text** (input format ``tokens``): token ids (rows, length), 0 padding, from the vocabulary the core fitted on
  the training rows; an embedding of ``run.vocab_size`` rows; padding positions are masked
  (``src_key_padding_mask``) and left out of the pooling.
- **numeric sequences** (input format ``matrix``): rows flattened step by step from ``(steps, features)``
  (``run.sequence_shape``); a plain table row is a sequence of one-feature steps. Each step's features are
  projected to the model width by a linear layer; every step is real (no padding).

Then positions (sinusoidal or learned), the encoder, masked mean pooling, a final layer norm and a linear head.
The input shape is saved in ``network.json`` beside the architecture, so ``load`` rebuilds without the run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from coupler.errors import ConfigError, CouplerError
from coupler_torch.engine import NETWORK, TensorBatches, TorchModel, read_network


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """The fixed sine/cosine position table of "Attention is all you need", shape (length, width)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table


class Encoder(nn.Module):
    """Input (batch, length) token ids or (batch, steps * features) numbers -> (batch, n_outputs)."""

    def __init__(self, *, kind: str, n_outputs: int, depth: int, heads: int, width: int, dropout: float,
                 positional: str, max_length: int, vocab_size: int = 0, steps: int = 0, features: int = 0):
        super().__init__()
        self.kind, self.steps, self.features = kind, steps, features
        if kind == "tokens":
            self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        else:
            self.embed = nn.Linear(features, width)
        if positional == "learned":
            self.positions = nn.Parameter(torch.randn(max_length, width) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(max_length, width), persistent=False)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "tokens":
            ids = x.long()
            padding = ids == 0
            # a text with no token at all (empty) keeps its first position, so that attention has a key
            padding[:, 0] &= ~padding.all(dim=1)
            h = self.embed(ids)
        else:
            h = self.embed(x.to(self.embed.weight.dtype).reshape(x.shape[0], self.steps, self.features))
            padding = None
        h = self.dropout(h + self.positions[: h.shape[1]])
        h = self.encoder(h, src_key_padding_mask=padding)
        if padding is None:
            pooled = h.mean(dim=1)
        else:
            keep = (~padding).unsqueeze(-1).to(h.dtype)
            pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(self.norm(pooled))


class Transformer(TorchModel):
    """A transformer encoder for text (``tokens``) and numeric sequences or rows (``matrix``)."""

    input_formats = ("tokens", "matrix")
    #: chosen on the validation split of the generated reviews (1000 rows, 20 epochs): val accuracy 0.965
    default_optimizer = {"name": "adamw", "lr": 0.003, "betas": [0.9, 0.999], "weight_decay": 0.01, "fused": "auto"}

    def __init__(self, task: str, seed: int, depth: int = 2, heads: int = 4, width: int = 64, dropout: float = 0.1,
                 positional: str = "sinusoidal", max_length: int = 512, batch_size: int = 32):
        super().__init__(task, seed, batch_size)
        # types, ranges and choices are checked by the schema (coupler_transformer.plugin.TransformerSchema)
        # before the model is built; the rules between parameters are checked here
        if width % heads:
            raise ConfigError("model.width", width, f"a multiple of model.heads={heads} (each head takes "
                                                    f"width/heads dimensions), e.g. {heads * max(1, width // heads)}")
        if width % 2:
            raise ConfigError("model.width", width, "an even number (sine/cosine position pairs)")
        self.depth, self.heads, self.width, self.dropout = depth, heads, width, float(dropout)
        self.positional, self.max_length = positional, max_length
        # what the data gives, set by fit (from the run) or load (from network.json)
        self.kind = "matrix"
        self.vocab_size = self.steps = self.features = 0

    def architecture(self) -> dict:
        return {"depth": self.depth, "heads": self.heads, "width": self.width, "dropout": self.dropout,
                "positional": self.positional, "max_length": self.max_length}

    def _inputs(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "steps": self.steps, "features": self.features}

    def build_network(self, n_inputs: int, n_outputs: int) -> nn.Module:
        return Encoder(n_outputs=n_outputs, **self.architecture(), **self._inputs())

    # --- what the run gives -----------------------------------------------------------------------------

    def fit(self, train, val, run) -> None:
        self.kind = "tokens" if getattr(run, "input_format", "matrix") == "tokens" else "matrix"
        shape = getattr(run, "sequence_shape", None)
        if self.kind == "tokens":
            self.vocab_size = int(run.vocab_size)
            if self.vocab_size > 2**24:
                raise ConfigError("data.vocab_size", self.vocab_size, "at most 16777216 ids")
            self.steps, self.features = int(np.shape(train.X)[1]), 1
            what = "data.length"
        else:
            width = int(np.shape(train.X)[1])
            if shape and len(shape) == 2 and shape[0] * shape[1] == width:
                self.steps, self.features = int(shape[0]), int(shape[1])
                what = "the sequence's steps"
            else:  # a plain table: each feature is a step of one number
                self.steps, self.features = width, 1
                what = "the table's model inputs (each one step)"
        if self.steps > self.max_length:
            raise ConfigError("model.max_length", self.max_length,
                              f"at least {self.steps}, the length of the inputs ({what})")
        super().fit(train, val, run)

    # token ids stay int64 on their way to the embedding
    def training_batches(self, split, epoch):
        if self.kind != "tokens":
            return super().training_batches(split, epoch)
        X = torch.as_tensor(np.asarray(split.X, dtype=np.int64))
        return TensorBatches(X, self._targets(split.y), self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                             weight=self.row_weights(split))

    def input_batches(self, X):
        if self.kind != "tokens" or isinstance(X, torch.Tensor):
            yield from super().input_batches(X)
            return
        X = torch.as_tensor(np.asarray(X, dtype=np.int64))
        for start in range(0, len(X), 1024):
            yield X[start:start + 1024]

    # --- artifacts: the input shape travels with the architecture --------------------------------------

    def save(self, directory: Path) -> None:
        super().save(directory)
        file = Path(directory) / NETWORK
        saved = json.loads(file.read_text())
        saved["inputs"] = self._inputs()
        file.write_text(json.dumps(saved, indent=2))

    def load(self, directory: Path) -> None:
        saved = read_network(directory)  # checked plain data; the sizes are checked against the weights
        inputs = saved.get("inputs")
        if not isinstance(inputs, dict):
            raise CouplerError(f"{directory}/{NETWORK} does not say what the network reads (its 'inputs'); "
                               f"it was not written by model=transformer")
        sizes = ("vocab_size", "steps", "features")
        if inputs.get("kind") not in ("tokens", "matrix") or not all(
                isinstance(inputs.get(k), int) and not isinstance(inputs.get(k), bool) and inputs[k] >= 0 for k in sizes):
            raise CouplerError(f"{directory}/{NETWORK}: its 'inputs' {json.dumps(inputs)} are not what model=transformer "
                               f"writes (kind tokens or matrix, whole numbers {', '.join(sizes)}); the file was changed "
                               f"or damaged: retrain the run (coupler train).")
        self.kind, self.vocab_size = inputs["kind"], inputs["vocab_size"]
        self.steps, self.features = inputs["steps"], inputs["features"]
        super().load(directory)
