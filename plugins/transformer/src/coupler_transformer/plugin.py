"""The ``transformer`` plugin: registers ``model=transformer``, ``model=hf_transformer`` and ``data=text_csv``.
Imports neither torch nor transformers (``coupler --help`` and ``coupler plugins`` import this module)."""

from __future__ import annotations

from pathlib import Path

from coupler import hookimpl
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


def build_transformer(task: str, seed: int, depth: int = 2, heads: int = 4, width: int = 64, dropout: float = 0.1,
                      positional: str = "sinusoidal", max_length: int = 512, batch_size: int = 32):
    from coupler_transformer.model import Transformer

    return Transformer(task=task, seed=seed, depth=depth, heads=heads, width=width, dropout=dropout,
                       positional=positional, max_length=max_length, batch_size=batch_size)


build_transformer.returns = TorchContract


def build_hf_transformer(task: str, seed: int, path=None, max_length: int = 128, batch_size: int = 16,
                         dropout: float = 0.1, freeze: bool = False):
    from coupler_transformer.hf import HFTransformer

    return HFTransformer(task=task, seed=seed, path=path, max_length=max_length, batch_size=batch_size,
                         dropout=dropout, freeze=freeze)


build_hf_transformer.returns = TorchContract


def load_text_csv(path=None, text: str = "text", label: str = "label", level: str = "word", vocab_size: int = 20000,
                  length: int = 128, lowercase: bool = True):
    from coupler_transformer.text_csv import load_text_csv

    return load_text_csv(path=path, text=text, label=label, level=level, vocab_size=vocab_size, length=length,
                         lowercase=lowercase)


@hookimpl
def register_models(register):
    register("transformer", build_transformer,
             description="a transformer encoder (torch layers; text token ids or numeric sequences/rows)")
    register("hf_transformer", build_hf_transformer,
             description="fine-tunes a local pretrained Hugging Face model on text: model.path=DIR (offline)")


@hookimpl
def register_data_loaders(register):
    register("text_csv", load_text_csv,
             description="a CSV of texts and labels: data.path=FILE data.text=COLUMN data.label=COLUMN")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
