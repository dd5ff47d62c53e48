"""``HFTransformer``: fine-tunes a pretrained Hugging Face encoder from a local directory, on the torch engine.

Offline by construction: every load passes ``local_files_only=True``, so a directory that lacks a file is an
error, never a download. No code from a model directory (``model.path``, or a finished run's ``model/pretrained/``)
runs: every load passes ``trust_remote_code=False`` (without it, transformers asks on a terminal whether to run the
Python files an ``auto_map`` in ``config.json`` or ``tokenizer_config.json`` points at), and weights are read from
safetensors only (``use_safetensors=True``; a ``pytorch_model.bin`` is a pickle and is refused by name).

This module also sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``; they take effect only where
``transformers`` was not imported before it (torchmetrics, which Lightning imports, imports it when it is
installed), so ``local_files_only`` is the guarantee, the variables a second line.

The model reads the raw text (input format ``text``) and tokenizes it with the pretrained model's own tokenizer
(``model.max_length`` tokens). The engine's feeding hooks are overridden: a split is tokenized once into an int64
tensor (rows, 2, length): input ids and attention mask, padded to the split's longest text; each batch is cut to
its own longest text inside the network. On top of the encoder: masked mean pooling of the last hidden states,
dropout and a linear head. Artifacts: the whole network (encoder and head) in ``weights.safetensors``,
``network.json``, and ``pretrained/`` with the pretrained model's config and tokenizer; ``load`` rebuilds the
encoder from that config (no pretrained weights are read twice) and restores the saved weights, so a finished
run needs ``model.path`` no more. ``model.path`` is checked when the model is built if it exists, and when
``fit`` needs it otherwise (a missing directory is the same clear error, after the data are read).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub (where transformers / huggingface_hub are not imported yet)
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from coupler.errors import ConfigError, CouplerError  # noqa: E402
from coupler.tokenizer import is_missing  # noqa: E402
from coupler_torch.engine import NETWORK, TensorBatches, TorchModel  # noqa: E402

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: weights in pickle files: unpickling can run code, so they are refused, never read
PICKLED_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: the files whose ``auto_map`` would point transformers at Python code in the directory
CODE_MAPS = ("config.json", "tokenizer_config.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
VALID = ("a directory holding a pretrained Hugging Face model: config.json, its weights (model.safetensors) and its "
         "tokenizer files (tokenizer.json, or vocab.txt / tokenizer.model with tokenizer_config.json), e.g. the "
         "directory save_pretrained() writes")
#: the directory inside a run's model/ that holds the pretrained model's config and tokenizer
PRETRAINED = "pretrained"
#: the config fields that must agree between a saved run and the model directory it is reloaded with
STRUCTURE = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def check_model_directory(path) -> Path:
    """``model.path`` as a Path, after checking it holds a config, weights and a tokenizer."""
    if path is None or str(path).strip() == "":
        raise ConfigError("model.path", path, VALID)
    directory = Path(str(path)).expanduser()
    if not directory.exists():
        raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} does not exist")
    if not directory.is_dir():
        raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} is a file, not a directory")
    if not (directory / "config.json").is_file():
        raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} has no config.json")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        pickled = [name for name in PICKLED_WEIGHT_FILES if (directory / name).is_file()]
        if pickled:
            raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} holds its weights in {pickled[0]}, a "
                                                       f"pickle, which can run code when loaded and is never read: "
                                                       f"convert it to model.safetensors where you trust it "
                                                       f"(model.save_pretrained(DIR, safe_serialization=True))")
        raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} has no weights ({', '.join(WEIGHT_FILES)})")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError("model.path", str(path), f"{VALID}; {str(path)!r} has no tokenizer files "
                                                   f"({', '.join(TOKENIZER_FILES)})")
    return directory.resolve()


def custom_code(directory: Path) -> list[str]:
    """What an ``auto_map`` in the directory's config or tokenizer config points at, as ``FILE maps KEY to CLASS``
    (read as JSON: nothing is imported); transformers would import that code only if trusted, which Coupler never
    does."""
    found = []
    for name in CODE_MAPS:
        try:
            mapping = json.loads((Path(directory) / name).read_text()).get("auto_map")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(mapping, dict):
            found += [f"its {name} maps {key} to {value}" for key, value in mapping.items()]
    return found


def _cannot_load(directory, what: str, exc: Exception) -> CouplerError:
    """The error for a directory transformers could not load from: custom code named as such (it is refused, not
    broken), anything else by the first line of transformers' reason. A finished run's own copy
    (``model/pretrained/``, beside ``network.json``) is named as the run's file, not as ``model.path``."""
    directory = Path(str(directory))
    code = custom_code(directory)
    run_copy = directory.name == PRETRAINED and (directory.parent / NETWORK).is_file()
    if code:
        reason = (f"{code[0]}, Python code in the directory, which Coupler never runs (trust_remote_code=False)")
        if run_copy:
            return CouplerError(f"{directory}: {reason}; refusing to load the run. Retrain it (coupler train) from a "
                                f"model whose model_type transformers ships.")
        return ConfigError("model.path", str(directory), f"a model directory without custom code: {reason}; use a "
                                                         f"model whose model_type transformers ships")
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if run_copy:
        return CouplerError(f"{directory}: {what} ({reason}); the run's files were changed or damaged: retrain it "
                            f"(coupler train).")
    return ConfigError("model.path", str(directory), f"{VALID}; {what}: {reason}")


def _longest_input(directory: Path, config) -> int | None:
    """The most tokens the pretrained model takes: its position table, or less where its tokenizer says so
    (RoBERTa's table has 514 rows for 512 tokens)."""
    limits = [getattr(config, "max_position_embeddings", None)]
    try:
        limits.append(json.loads((directory / "tokenizer_config.json").read_text()).get("model_max_length"))
    except (OSError, ValueError, AttributeError):
        pass
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]  # tokenizers say 1e30 for "none"
    return min(limits) if limits else None


class PretrainedClassifier(nn.Module):
    """(batch, 2, length) int64 input ids and attention mask -> (batch, n_outputs)."""

    def __init__(self, encoder: nn.Module, n_outputs: int, dropout: float, freeze: bool):
        super().__init__()
        # from_pretrained returns it in eval mode; the engine trains it, unless it is frozen (a fixed feature
        # extractor: no dropout noise in its features, from the first batch on)
        self.encoder = encoder.train(not freeze)
        if freeze:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)
        self.freeze = freeze
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_outputs)

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        if self.freeze:  # a frozen encoder is a fixed feature extractor: no dropout noise in its features
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        mask = x[:, 1]
        longest = max(int(mask.sum(dim=1).max()), 1)  # the batch's longest text: no attention on shared padding
        ids, mask = x[:, 0, :longest], mask[:, :longest]
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        keep = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


class HFTransformer(TorchModel):
    """A local pretrained Hugging Face encoder, masked mean pooling and a linear head, fine-tuned by the engine."""

    input_formats = ("text",)
    input_format = "text"
    default_optimizer = {"name": "adamw", "lr": 5e-5, "betas": [0.9, 0.999], "weight_decay": 0.01, "fused": "auto"}
    default_scheduler = {"name": "cosine", "min_lr": 0.0}

    def __init__(self, task: str, seed: int, path=None, max_length: int = 128, batch_size: int = 16,
                 dropout: float = 0.1, freeze: bool = False):
        super().__init__(task, seed, batch_size)
        # the values are checked by the schema (coupler_transformer.plugin.HFTransformerSchema) before the model is
        # built; the path and max_length against the pretrained model's positions are checked here
        self.max_length, self.dropout, self.freeze = max_length, float(dropout), freeze
        self.requested_path, self.path = path, None
        #: where the config and the tokenizer are read: the pretrained directory, or a finished run's copy
        self._source: Path | None = None
        self._tokenizer = None
        self._from_pretrained = True  # fit starts from the pretrained weights; load from the saved ones
        if path is None or str(path).strip() == "" or Path(str(path)).expanduser().exists():
            self._pretrained_directory()  # checked now; a missing one only when fit needs it: a finished run
                                          # reloads from its own copy of the config and tokenizer

    def _pretrained_directory(self) -> Path:
        """``model.path``, checked (a clear ``ConfigError`` when it does not hold a model) and resolved."""
        if self.path is None:
            path = check_model_directory(self.requested_path)
            limit = _longest_input(path, self._read_config(path))
            if limit is not None and self.max_length > limit:
                raise ConfigError("model.max_length", self.max_length, f"at most {limit}, the longest input the "
                                                                       f"pretrained model at {str(path)!r} has "
                                                                       f"positions for")
            self.path = path
        return self.path

    def architecture(self) -> dict:
        return {"max_length": self.max_length, "dropout": self.dropout, "freeze": self.freeze}

    @staticmethod
    def _read_config(directory: Path):
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
        except Exception as exc:
            raise _cannot_load(directory, "its config.json cannot be read", exc) from None

    def _pretrained_config(self):
        return self._read_config(self._source or self._pretrained_directory())

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self._source or self._pretrained_directory()),
                                                                local_files_only=True, trust_remote_code=False)
                self._tokenizer.padding_side = "right"  # the network cuts each batch at its longest text
            except Exception as exc:
                raise _cannot_load(self._source or self.path, "its tokenizer cannot be loaded", exc) from None
        return self._tokenizer

    def build_network(self, n_inputs: int, n_outputs: int) -> nn.Module:
        from transformers import AutoModel

        config = self._pretrained_config()
        try:
            if self._from_pretrained:
                encoder = AutoModel.from_pretrained(str(self._pretrained_directory()), local_files_only=True,
                                                    trust_remote_code=False, use_safetensors=True)
            else:
                encoder = AutoModel.from_config(config, trust_remote_code=False)
        except Exception as exc:
            raise _cannot_load(self._source or self.path, "transformers cannot build a model from it", exc) from None
        return PretrainedClassifier(encoder, n_outputs, self.dropout, self.freeze)

    # --- feeding: the model's own tokenizer ------------------------------------------------------------

    def encode(self, X) -> torch.Tensor:
        """Texts (a DataFrame whose one column is the text, or a sequence of strings) -> (rows, 2, length) int64."""
        column = X.iloc[:, 0] if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2 else X
        texts = ["" if is_missing(t) else str(t) for t in list(column)]
        if not texts:
            return torch.zeros((0, 2, 1), dtype=torch.long)
        encoded = self.tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        return torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1).long()

    def input_size(self, X) -> int:
        return self.max_length

    def training_batches(self, split, epoch):
        return TensorBatches(self.encode(split.X), self._targets(split.y), self.batch_size, shuffle=True,
                             seed=self.seed, epoch=epoch, weight=self.row_weights(split))

    def input_batches(self, X):
        if isinstance(X, torch.Tensor):  # already encoded
            for start in range(0, len(X), 256):
                yield X[start:start + 256]
            return
        for start in range(0, len(X), 256):
            yield self.encode(X[start:start + 256] if not hasattr(X, "iloc") else X.iloc[start:start + 256])

    # --- training: the pretrained weights ------------------------------------------------------------------

    def fit(self, train, val, run) -> None:
        self._from_pretrained, self._tokenizer = True, None
        self._source = self._pretrained_directory()
        if val is not None and not isinstance(val.X, torch.Tensor):  # tokenized once, scored every epoch
            from coupler.components import Split

            val = Split(self.encode(val.X), val.y)
        super().fit(train, val, run)

    # --- artifacts ---------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """The engine's weights and network.json, and in ``pretrained/`` the pretrained model's config and
        tokenizer: a finished run reloads from its own files, whether or not ``model.path`` is still there."""
        super().save(directory)
        config = self._pretrained_config()
        copy = Path(directory) / PRETRAINED
        config.save_pretrained(str(copy))
        self.tokenizer.save_pretrained(str(copy))
        file = Path(directory) / NETWORK
        saved = json.loads(file.read_text())
        saved["pretrained"] = {"path": str(self.path), "config": config.to_diff_dict()}
        file.write_text(json.dumps(saved, indent=2, default=str))

    def load(self, directory: Path) -> None:
        copy = Path(directory) / PRETRAINED
        self._tokenizer = None
        if (copy / "config.json").is_file():
            self._source = copy
        else:  # a run saved before the copy: the config and tokenizer come from model.path, which must match
            self._source = self._pretrained_directory()
            saved = json.loads((Path(directory) / NETWORK).read_text())
            then = (saved.get("pretrained") or {}).get("config") or {}
            now = self._pretrained_config().to_dict()
            differ = [k for k in STRUCTURE if k in then and then.get(k) != now.get(k)]
            if differ:
                raise ConfigError("model.path", str(self.path), f"the directory of the model the run was trained "
                                  f"from ({(saved.get('pretrained') or {}).get('path')}): this one differs in "
                                  f"{', '.join(f'{k}={now.get(k)!r} (trained: {then.get(k)!r})' for k in differ)}")
        self._from_pretrained = False
        try:
            super().load(directory)
        finally:
            self._from_pretrained = True
