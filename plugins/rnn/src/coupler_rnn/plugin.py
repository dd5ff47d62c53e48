"""The ``rnn`` plugin: registers ``model=lstm``, ``model=gru``, ``data=sequences`` and ``data=timeseries``.
Imports no torch (``coupler plugins`` and ``coupler --help`` import this module)."""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


def _model(cell: str):
    def build(task: str, seed: int, layers: int = 1, hidden_size: int = 32, bidirectional: bool = False,
              dropout: float = 0.0, batch_size: int = 64, skip: bool = True, threads=1):
        from coupler_rnn.model import RNN

        return RNN(task=task, seed=seed, cell=cell, layers=layers, hidden_size=hidden_size,
                   bidirectional=bidirectional, dropout=dropout, batch_size=batch_size, skip=skip, threads=threads)

    build.__name__ = f"build_{cell}"
    build.returns = TorchContract
    return build


def load_sequences(path=None, target_path=None, rows: int = 600, steps: int = 30, seed: int = 0):
    from coupler_rnn.data import load_sequences

    return load_sequences(path=path, target_path=target_path, rows=rows, steps=steps, seed=seed)


def load_timeseries(path=None, columns=None, target=None, lookback: int = 24, horizon: int = 1, gap=None,
                    length: int = 2000, seed: int = 0):
    from coupler_rnn.data import load_timeseries

    return load_timeseries(path=path, columns=columns, target=target, lookback=lookback, horizon=horizon, gap=gap,
                           length=length, seed=seed)


@hookimpl
def register_models(register):
    register("lstm", _model("lstm"), description="an LSTM over sequence rows (torch engine; layers, hidden_size, "
                                                 "bidirectional); classification or forecasting")
    register("gru", _model("gru"), description="a GRU over sequence rows (torch engine; layers, hidden_size, "
                                               "bidirectional); classification or forecasting")


@hookimpl
def register_data_loaders(register):
    register("sequences", load_sequences,
             description="sequence classification: a .npz (X: samples x steps x features, y) or .npy pair; "
                         "null path: a generated, seeded set")
    register("timeseries", load_timeseries,
             description="forecasting from a CSV time series: lookback windows, target horizon steps ahead, "
                         "naive last-value baseline; null path: a generated series")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
