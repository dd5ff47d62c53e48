"""``MLP``: a multilayer perceptron for tables, the smallest complete model on the torch engine.

A model on the engine says what its network is; ``TorchModel`` does the rest (batches, loss, optimizer,
epochs, early stopping, checkpoints, safetensors artifacts, reload). Binary, multiclass and regression alike:
the engine asks for one output per class, or one value. coupler-torch's README walks through this file
("A torch model in 30 lines").
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from coupler.errors import ConfigError
from coupler_torch.engine import TorchModel


class MLP(TorchModel):
    """Its parameters' types and ranges are checked by ``model=mlp``'s schema (``coupler_torch.plugin.MLPSchema``)
    before any data is read; the schema cannot say that each hidden width is at least 1, so ``__init__`` does."""

    export_formats = ("onnx", "torchscript")  # coupler_torch.export (build_mlp declares them too)
    #: a data set larger than memory (data=parquet) reaches fit as a RowStream, read in batches (TorchModel.fit);
    #: a table in memory as a float matrix. build_mlp declares them too
    input_formats = ("stream", "matrix")

    def __init__(self, task: str, seed: int, hidden: list[int], dropout: float, batch_size: int, threads: int | None):
        super().__init__(task, seed, batch_size)
        if not all(width >= 1 for width in hidden):
            raise ConfigError("model.hidden", hidden, "a list of layer widths, each a whole number of at least 1 "
                                                      "([64], [128,64]; [] for none: a linear model)")
        self.hidden, self.dropout, self.threads = list(hidden), float(dropout), threads

    def architecture(self) -> dict:
        """What rebuilds the network on reload (saved in network.json)."""
        return {"hidden": self.hidden, "dropout": self.dropout}

    def build_network(self, n_inputs: int, n_outputs: int) -> nn.Module:
        layers, width = [], n_inputs
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(self.dropout)]
            width = size
        return nn.Sequential(*layers, nn.Linear(width, n_outputs))

    # A small network's steps are too short to share between threads: on a busy machine, threads waiting for
    # each other made a breast_cancer run ten times slower. Training and prediction run on ``threads``.
    def fit(self, train, val, run) -> None:
        with _torch_threads(self.threads):
            super().fit(train, val, run)

    def outputs(self, X, device=None, context=None) -> torch.Tensor:
        with _torch_threads(self.threads):
            return super().outputs(X, device, context)


@contextmanager
def _torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` (None: left alone) for the block, then put back."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
