"""``RNN``: an LSTM or GRU over sequence rows, on the torch engine.

Rows arrive as ``steps * features`` preprocessed columns, flattened step by step (``Dataset(sequence=...)``);
the network reshapes each row to ``(steps, features)``, runs the recurrent layers, and reads the last
layer's final hidden state (both directions when bidirectional) into a linear head: logits for
classification, one value for regression (forecasting). With ``skip`` (default) a linear map of the whole
input row is added to the head's output (a learned autoregressive term, which the recurrent part corrects).

The shape comes from ``run.sequence_shape`` when the model trains and is stored in ``architecture()``, so a
reload rebuilds the same network. Ordinary tabular rows (no sequence shape) are read as a sequence of one
feature per step (one step per column).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from coupler.errors import ConfigError, CouplerError
from coupler_torch.engine import TorchModel, read_network

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class SequenceNetwork(nn.Module):
    def __init__(self, cell: str, steps: int, features: int, layers: int, hidden_size: int, bidirectional: bool,
                 dropout: float, skip: bool, n_outputs: int):
        super().__init__()
        self.steps, self.features = steps, features
        self.rnn = CELLS[cell](input_size=features, hidden_size=hidden_size, num_layers=layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * self.directions, n_outputs)
        self.skip = nn.Linear(steps * features, n_outputs) if skip else None

    def forward(self, x):
        sequences = x.reshape(x.shape[0], self.steps, self.features)
        _, state = self.rnn(sequences)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        last = hidden[-self.directions:].transpose(0, 1).reshape(x.shape[0], -1)  # the last layer's directions
        out = self.head(self.dropout(last))
        return out if self.skip is None else out + self.skip(x)


class RNN(TorchModel):
    #: Adam at 0.003 (the engine's default is 0.001): chosen on the validation split of both generated sets
    default_optimizer = {**TorchModel.default_optimizer, "lr": 0.003}

    def __init__(self, task: str, seed: int, cell: str = "lstm", layers: int = 1, hidden_size: int = 32,
                 bidirectional: bool = False, dropout: float = 0.0, batch_size: int = 64, skip: bool = True, threads=1):
        super().__init__(task, seed, batch_size)
        if cell not in CELLS:
            raise ConfigError("model.cell", cell, ", ".join(CELLS))
        # the values are checked by the schema (coupler_rnn.plugin.RNNSchema) before the model is built
        self.cell, self.layers, self.hidden_size, self.bidirectional = cell, layers, hidden_size, bidirectional
        self.dropout, self.skip, self.threads = float(dropout), skip, threads
        self.sequence_shape: list[int] | None = None  # [steps, features], set by fit or load

    def architecture(self) -> dict:
        return {"cell": self.cell, "layers": self.layers, "hidden_size": self.hidden_size,
                "bidirectional": self.bidirectional, "dropout": self.dropout, "skip": self.skip,
                "sequence_shape": self.sequence_shape}

    def fit(self, train, val, run) -> None:
        shape = getattr(run, "sequence_shape", None)
        n_inputs = self.input_size(train.X)
        if shape is None:
            self.sequence_shape = [n_inputs, 1]  # a table: one feature per step, one step per column
        else:
            shape = [int(v) for v in shape]
            if len(shape) == 1:
                shape.append(1)
            if len(shape) != 2 or math.prod(shape) != n_inputs:
                raise CouplerError(f"model={self.cell}: the data's sequence shape {tuple(shape)} does not cover its "
                                   f"{n_inputs} input columns; a recurrent model reads rows of steps x features "
                                   f"numeric columns (categorical columns one-hot encoded change the count)")
            self.sequence_shape = shape
        with self._threads():
            super().fit(train, val, run)

    def outputs(self, X, device=None, context=None):
        with self._threads():
            return super().outputs(X, device, context)

    @contextmanager
    def _threads(self):
        """torch's intra-op threads set to ``threads`` while this model computes, then put back: a recurrent step
        of a small network is too short to share between threads, and on a busy machine waiting threads slow
        every step down."""
        before = torch.get_num_threads()
        if self.threads is not None and self.threads != before:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    def build_network(self, n_inputs: int, n_outputs: int) -> nn.Module:
        steps, features = self.sequence_shape or [n_inputs, 1]
        return SequenceNetwork(self.cell, steps, features, self.layers, self.hidden_size, self.bidirectional,
                               self.dropout, self.skip, n_outputs)

    def load(self, directory: Path) -> None:
        saved = read_network(directory)  # checked plain data; the shapes are checked against the weights
        shape = saved["architecture"].get("sequence_shape")
        self.sequence_shape = list(shape) if shape is not None else None
        super().load(directory)
