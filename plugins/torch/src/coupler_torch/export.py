"""Exports of a torch-engine model that reads a matrix (``model=mlp``): ONNX and TorchScript.

- **ONNX** (``to_onnx``): the network with its head (softmax and argmax, or the regression target's scale undone)
  exported by ``torch.onnx.export`` with the TorchScript-based exporter (``dynamo=False``: it needs no network and
  no onnxscript rewrite, and keeps the graph small) and a dynamic batch axis; the core prepends the run's
  preprocessing (``coupler.onnx_export``).
- **TorchScript** (``to_torchscript``): ``torch.jit.script`` of ``Scripted``, the network with the run's
  preprocessing in torch ops. TorchScript has no strings worth shipping to a server, so it takes two tensors:
  ``numeric``, float64 (rows, numeric columns) of the raw numbers in the order ``exports/torchscript.json`` lists
  (NaN: missing, imputed as training did), and ``categories``, int64 (rows, categorical columns) of each value's
  position in that column's training categories (listed there too; -1: unseen; a missing value: the position of
  the column's most frequent training value, also listed). It returns ``{"label": class codes, "probabilities":
  float64}`` or ``{"prediction": float64}``; the labels are positions in the manifest's ``classes``.
"""


import copy
import io
import warnings
from typing import List

import numpy as np
import torch
from torch import nn

from coupler.preprocessing import category_text


def _frozen(network: nn.Module) -> nn.Module:
    return copy.deepcopy(network).cpu().eval()


class _Head(nn.Module):
    """The network and what ``TorchModel.predict`` / ``predict_proba`` do to its outputs."""

    def __init__(self, network: nn.Module, task: str, target_scale):
        super().__init__()
        self.network, self.regression = _frozen(network), task == "regression"
        self.mean, self.std = float(target_scale[0]), float(target_scale[1])
        self.dtype = next((p.dtype for p in self.network.parameters() if p.is_floating_point()), torch.float32)

    def forward(self, x: torch.Tensor):
        outputs = self.network(x.to(self.dtype)).float()
        if self.regression:
            return outputs.squeeze(-1) * self.std + self.mean
        return torch.argmax(outputs, dim=1), torch.softmax(outputs, dim=1)


def to_onnx(model, n_features: int):
    from coupler.onnx_export import require

    require("onnx", install="coupler-torch[onnx]")
    import onnx

    head = _Head(model.network, model.task, model.target_scale).eval()
    names = ["prediction"] if model.task == "regression" else ["label", "probabilities"]
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript-based exporter, deprecated since torch 2.9 but offline and fast (0.4 s for a small MLP; the
        # torch.export-based one took 18 s here, most of it importing onnxscript)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        torch.onnx.export(head, (torch.zeros(2, n_features),), buffer, input_names=["features"], output_names=names,
                          dynamic_axes={n: {0: "rows"} for n in ["features", *names]}, opset_version=17,
                          dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


class Scripted(nn.Module):
    """The run's matrix preprocessing (``coupler.preprocessing.Preprocessor``) and the network, scriptable."""

    sizes: List[int]  # each categorical column's category count (TorchScript needs the type of an empty list)

    def __init__(self, network: nn.Module, state: dict, task: str, target_scale):
        super().__init__()
        columns = state["columns"]
        numeric = [c for c in columns if c not in state["categorical"]]
        categorical = [c for c in columns if c in state["categorical"]]
        spec = state["numeric"]
        self.register_buffer("fill", torch.tensor([[spec[c]["fill"] for c in numeric]], dtype=torch.float64))
        self.register_buffer("offset", torch.tensor([[spec[c]["offset"] for c in numeric]], dtype=torch.float64))
        self.register_buffer("scale", torch.tensor([[spec[c]["scale"] for c in numeric]], dtype=torch.float64))
        self.sizes = [len(state["categorical"][c]["categories"]) for c in categorical]
        self.onehot = state["encode"] != "ordinal"
        # the blocks come numeric first, then each categorical column: put them back in the preprocessor's order
        width = {c: 1 if c not in state["categorical"] or not self.onehot else len(state["categorical"][c]["categories"])
                 for c in columns}
        start, position = {}, 0
        for c in numeric + categorical:
            start[c], position = position, position + width[c]
        order = [start[c] + i for c in columns for i in range(width[c])]
        self.register_buffer("order", torch.tensor(order, dtype=torch.long))
        # float32 weights (a network trained under another precision is cast: the parity check judges it)
        self.network = _frozen(network).float()
        self.regression = task == "regression"
        self.mean, self.std = float(target_scale[0]), float(target_scale[1])

    def forward(self, numeric: torch.Tensor, categories: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.where(torch.isnan(numeric), self.fill, numeric)
        blocks = [(x - self.offset) / self.scale]
        for i, size in enumerate(self.sizes):
            codes = categories[:, i:i + 1]
            if self.onehot:
                blocks.append((codes == torch.arange(size, device=codes.device)).to(torch.float64))
            else:
                blocks.append(codes.to(torch.float64))
        features = torch.cat(blocks, dim=1).index_select(1, self.order).float()
        outputs = self.network(features).double()
        if self.regression:
            return {"prediction": outputs.squeeze(-1) * self.std + self.mean}
        return {"label": torch.argmax(outputs, dim=1), "probabilities": torch.softmax(outputs, dim=1)}


def to_torchscript(model, state: dict, task: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the issue asks for it, and it works
        warnings.filterwarnings("ignore", ".*torch.jit.*deprecated", DeprecationWarning)
        scripted = torch.jit.script(Scripted(model.network, state, task, model.target_scale).eval())
        torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def scripted_inputs(state: dict, rows) -> tuple[torch.Tensor, torch.Tensor]:
    """The two input tensors of a TorchScript export for raw ``rows`` (a DataFrame with the training columns)."""
    import pandas as pd

    numeric = [c for c in state["columns"] if c not in state["categorical"]]
    numbers = np.column_stack([pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64) for c in numeric]) \
        if numeric else np.zeros((len(rows), 0))
    codes = []
    for column, spec in state["categorical"].items():
        values = category_text(rows[column], spec["categories"]).fillna(spec["fill"]).to_numpy()
        codes.append(pd.Index(spec["categories"]).get_indexer(values))
    categories = np.column_stack(codes) if codes else np.zeros((len(rows), 0), dtype=np.int64)
    return torch.as_tensor(numbers), torch.as_tensor(categories.astype(np.int64))


def torchscript_answers(data: bytes, state: dict, rows, task: str):
    """What a TorchScript export (its bytes, just made: never a file of a run directory) answers for ``rows``."""
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the issue asks for it, and it loads
        warnings.filterwarnings("ignore", ".*torch.jit.*deprecated", DeprecationWarning)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        out = module(*scripted_inputs(state, rows))
    if task == "regression":
        return out["prediction"].numpy(), None
    return out["label"].numpy(), out["probabilities"].numpy()
