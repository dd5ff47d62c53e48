"""Built-in exporters. ``model_card`` writes a Markdown card describing what the run trained and measured."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coupler.components import Exporter
from coupler.hookspecs import hookimpl
from coupler.onnx_export import OnnxExporter
from coupler.run_directory import atomic_write_text

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


@dataclass
class ModelCardSchema:
    """``exporters=[model_card]``: it takes no parameters (the card describes what the run recorded)."""


class ModelCard(Exporter):
    def export(self, model, run, directory: Path) -> list[Path]:
        config = run.config
        recorded = json.loads((run.directory / "metrics.json").read_text())
        # the measured splits, and cross-validation's means: metrics.json's other sections are no metrics (timing)
        metrics = {split: recorded[split] for split in ("val", "test") if recorded.get(split)}
        if recorded.get("cv"):
            metrics["cv mean"] = {name: value.get("mean") for name, value in recorded["cv"].items()}
        timing = recorded.get("timing") or {}
        lines = [
            f"# Model card: {config['model']['name']} on {config['data']['name']}",
            "",
            f"- task: {run.task}",
            f"- classes: {', '.join(map(str, run.classes))}" if run.classes else "- target: continuous",
            f"- features ({len(run.feature_names)}): {', '.join(run.feature_names[:20])}"
            + (" ..." if len(run.feature_names) > 20 else ""),
            f"- seed: {run.seed}",
            *([f"- fit: {timing['fit_seconds']} s, whole run: {timing['total_seconds']} s"]
              if {"fit_seconds", "total_seconds"} <= timing.keys() else []),
            "",
            "## Parameters",
            "",
            "```json",
            json.dumps(config["model"], indent=2, default=str),
            "```",
            "",
            "## Metrics",
            "",
            "| metric | " + " | ".join(metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        names = sorted({name for split in metrics.values() for name in split})
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_fmt(metrics[s].get(name)) for s in metrics) + " |")
        path = directory / "model_card.md"
        atomic_write_text(path, "\n".join(lines) + "\n")
        return [path]


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


@hookimpl
def register_exporters(register):
    register("model_card", ModelCard, description="a Markdown card: model, parameters, data, metrics",
             schema=ModelCardSchema)
    register("onnx", OnnxExporter, schema=OnnxSchema,
             description="exports/model.onnx: the raw columns in, labels and probabilities out, parity checked")


@dataclass
class OnnxSchema:
    """``exporters=[onnx]``: it takes no parameters (the graph takes the run's raw columns, its preprocessing
    included; its parity on the test rows is checked and recorded)."""
