"""The ``rnn`` plugin: registers ``model=lstm``, ``model=gru``, ``data=sequences`` and ``data=timeseries``, each
with its schema (the single source of its parameters: defaults, checks, ``coupler train --help``).
Imports no torch (``coupler plugins`` and ``coupler --help`` import this module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from coupler import hookimpl
from coupler.schema import param
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


@dataclass
class RNNSchema:
    """``model=lstm`` and ``model=gru`` (one network, the cell differs): rows are reshaped to (steps, features)
    from the data's sequence shape (data=sequences, data=timeseries); a plain table is read as one feature per
    step. Optimizer: optimizer=... (default adam, lr 0.003); epochs: trainer.max_epochs."""

    layers: int = param(1, help="stacked recurrent layers", ge=1)
    hidden_size: int = param(32, help="units per layer (and per direction)", ge=1)
    bidirectional: bool = param(False, help="also read each sequence backwards")
    dropout: float = param(0.0, help="dropout probability between stacked layers and before the head", ge=0, lt=1)
    batch_size: int = param(64, help="rows per training batch", ge=1)
    skip: bool = param(True, help="add a linear map of the whole input row to the output (an autoregressive term)")
    threads: int | None = param(1, help="torch threads while training and predicting (null: torch's default); "
                                        "small recurrent steps run fastest on one", ge=1)


@dataclass
class SequencesSchema:
    """``data=sequences``: sequence classification. No path: a generated, seeded set (``rows`` sequences of
    ``steps`` x 3 features, 3 classes told apart by how a sine's frequency changes over time). Checked beyond the
    schema (by the loader): target_path needs a .npy path, a .npz carries its own y."""

    path: str | None = param(None, help="a .npz with arrays X (samples x steps x features) and y, or a .npy of X "
                                        "(with target_path); null: the generated set")
    target_path: str | None = param(None, help="a .npy of the labels, when path is a .npy of X")
    rows: int = param(600, help="sequences of the generated set", ge=30)
    steps: int = param(30, help="steps per sequence of the generated set", ge=4)
    seed: int = param(0, help="seed of the generated set", ge=0)


@dataclass
class TimeseriesSchema:
    """``data=timeseries``: forecasting from a CSV time series (rows in time order): X = the last ``lookback``
    steps of ``columns``, y = ``target`` ``horizon`` steps after the window's last step; chronological split;
    baseline: the last value. No path: a generated series (load + temperature, ``length`` steps, seeded).
    Checked beyond the schema (by the loader): target is required with a path, columns name numeric columns."""

    path: str | None = param(None, help="the CSV file; null: the generated series")
    columns: Annotated[list[str | int] | str | int | None, "a list of column names, one name, or null"] = param(
        None, help="the window's columns; null: every numeric column (the target's own history included)")
    target: Annotated[str | int | None, "a column name, or null"] = param(None, help="the column to forecast: required with a "
                                                                                  "path; the generated series "
                                                                                  "forecasts load")
    lookback: int = param(24, help="steps per window", ge=1)
    horizon: int = param(1, help="how many steps after the window's last step the target lies", ge=1)
    gap: int | None = param(None, help="windows left out at each split boundary; null: horizon", ge=0)
    length: int = param(2000, help="steps of the generated series", ge=50)
    seed: int = param(0, help="seed of the generated series", ge=0)


def _model(cell: str):
    def build(task: str, seed: int, layers, hidden_size, bidirectional, dropout, batch_size, skip, threads):
        from coupler_rnn.model import RNN

        return RNN(task=task, seed=seed, cell=cell, layers=layers, hidden_size=hidden_size,
                   bidirectional=bidirectional, dropout=dropout, batch_size=batch_size, skip=skip, threads=threads)

    build.__name__ = f"build_{cell}"
    build.returns = TorchContract
    return build


def load_sequences(path, target_path, rows, steps, seed):
    from coupler_rnn.data import load_sequences

    return load_sequences(path=path, target_path=target_path, rows=rows, steps=steps, seed=seed)


def load_timeseries(path, columns, target, lookback, horizon, gap, length, seed):
    from coupler_rnn.data import load_timeseries

    return load_timeseries(path=path, columns=columns, target=target, lookback=lookback, horizon=horizon, gap=gap,
                           length=length, seed=seed)


@hookimpl
def register_models(register):
    register("lstm", _model("lstm"), schema=RNNSchema,
             description="an LSTM over sequence rows (torch engine; layers, hidden_size, bidirectional); "
                         "classification or forecasting")
    register("gru", _model("gru"), schema=RNNSchema,
             description="a GRU over sequence rows (torch engine; layers, hidden_size, bidirectional); "
                         "classification or forecasting")


@hookimpl
def register_data_loaders(register):
    register("sequences", load_sequences, schema=SequencesSchema,
             description="sequence classification: a .npz (X: samples x steps x features, y) or .npy pair; "
                         "null path: a generated, seeded set")
    register("timeseries", load_timeseries, schema=TimeseriesSchema,
             description="forecasting from a CSV time series: lookback windows, target horizon steps ahead, "
                         "naive last-value baseline; null path: a generated series")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
