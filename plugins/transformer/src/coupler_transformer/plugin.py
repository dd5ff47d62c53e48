"""The ``transformer`` plugin: registers ``model=transformer``, ``model=hf_transformer`` and ``data=text_csv``, each
with its schema (the single source of its parameters: defaults, checks, ``coupler train --help``).
Imports neither torch nor transformers (``coupler --help`` and ``coupler plugins`` import this module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coupler import hookimpl
from coupler.schema import param
from coupler_torch.contract import TorchContract  # what its models declare, without importing torch

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


@dataclass
class TransformerSchema:
    """``model=transformer``: an encoder of torch's nn.TransformerEncoder layers. Text (data=text_csv): token ids
    through an embedding; sequences or plain table rows (each feature a step): each step's features projected to
    the model width. Padding masks, masked mean pooling, a linear head. Checked beyond the schema (by the model):
    width a multiple of heads and even; max_length at least the data's length."""

    depth: int = param(2, help="encoder layers", ge=1, le=64)
    heads: int = param(4, help="attention heads; width must be a multiple of heads", ge=1)
    width: int = param(64, help="model width (d_model), even; the feed-forward layer is 4x wider", ge=2)
    dropout: float = param(0.1, help="dropout probability on the embeddings and in each encoder layer", ge=0, lt=1)
    positional: str = param("sinusoidal", help="position embeddings: fixed sine/cosine or learned",
                            choices=("sinusoidal", "learned"))
    max_length: int = param(512, help="the longest sequence (tokens or steps) the network takes", ge=1)
    batch_size: int = param(32, help="rows per training batch", ge=1)


@dataclass
class HFTransformerSchema:
    """``model=hf_transformer``: fine-tunes a pretrained Hugging Face encoder from a LOCAL directory (never the hub);
    masked mean pooling and a linear head; the torch engine trains it. Checked beyond the schema (by the model):
    the directory holds a model, max_length fits its positions."""

    path: str = param(help="the pretrained model's directory: config.json, the weights (model.safetensors) and "
                           "the tokenizer files")
    max_length: int = param(128, help="tokens a text keeps (the model's own tokenizer, special tokens included)",
                            ge=2)
    batch_size: int = param(16, help="rows per training batch", ge=1)
    dropout: float = param(0.1, help="dropout probability before the head", ge=0, lt=1)
    freeze: bool = param(False, help="true: train the head only, the pretrained encoder stays as it is")


@dataclass
class TextCSVSchema:
    """``data=text_csv``: a CSV of texts and their labels. The vocabulary is fitted on the training rows only
    (ids: 0 padding, 1 unknown, 2.. by frequency) and saved in the run's preprocessor.json. Checked beyond the
    schema (by the loader): text and label are two different columns of the file."""

    path: str = param(help="the CSV file")
    text: str = param("text", help="the column holding the text")
    label: str = param("label", help="the column holding the label (the target)")
    level: str = param("word", help="word or character tokens", choices=("word", "char"))
    vocab_size: int = param(20000, help="ids kept, padding and unknown included", ge=3)
    length: int = param(128, help="tokens a text keeps (longer texts are cut, shorter ones padded)", ge=1)
    lowercase: bool = param(True, help="lowercase the text before it is split into tokens")


def build_transformer(task: str, seed: int, depth, heads, width, dropout, positional, max_length, batch_size):
    from coupler_transformer.model import Transformer

    return Transformer(task=task, seed=seed, depth=depth, heads=heads, width=width, dropout=dropout,
                       positional=positional, max_length=max_length, batch_size=batch_size)


build_transformer.returns = TorchContract


def build_hf_transformer(task: str, seed: int, path, max_length, batch_size, dropout, freeze):
    from coupler_transformer.hf import HFTransformer

    return HFTransformer(task=task, seed=seed, path=path, max_length=max_length, batch_size=batch_size,
                         dropout=dropout, freeze=freeze)


build_hf_transformer.returns = TorchContract


def load_text_csv(path, text, label, level, vocab_size, length, lowercase):
    from coupler_transformer.text_csv import load_text_csv

    return load_text_csv(path=path, text=text, label=label, level=level, vocab_size=vocab_size, length=length,
                         lowercase=lowercase)


@hookimpl
def register_models(register):
    register("transformer", build_transformer, schema=TransformerSchema,
             description="a transformer encoder (torch layers; text token ids or numeric sequences/rows)")
    register("hf_transformer", build_hf_transformer, schema=HFTransformerSchema,
             description="fine-tunes a local pretrained Hugging Face model on text: model.path=DIR (offline)")


@hookimpl
def register_data_loaders(register):
    register("text_csv", load_text_csv, schema=TextCSVSchema,
             description="a CSV of texts and labels: data.path=FILE data.text=COLUMN data.label=COLUMN")


@hookimpl
def register_config_dirs(register):
    """``conf/search/MODEL.yaml``: the search space of each model of this plugin (``coupler train -m search=MODEL``,
    with coupler-optuna installed). The plugin that knows a model's parameters ships its space, listed with it as
    the provider (``coupler train --help``, ``coupler plugins``)."""
    register(Path(__file__).parent / "conf")
