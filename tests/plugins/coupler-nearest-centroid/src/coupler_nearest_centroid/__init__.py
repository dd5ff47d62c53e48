"""A nearest-centroid classifier: what a small third-party model plugin looks like."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from coupler import hookimpl
from coupler.components import Model
from coupler.errors import CouplerError

COUPLER_API = ">=1.0,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)


class NearestCentroid(Model):
    def __init__(self, task, seed, metric="euclidean"):
        if task == "regression":
            raise CouplerError("model=nearest_centroid is a classifier; the task is regression.")
        if metric not in ("euclidean", "manhattan"):
            raise CouplerError(f"model.metric={metric!r}: use euclidean or manhattan.")
        self.metric, self.centroids = metric, None

    def fit(self, train, val, run):
        self.centroids = np.stack([train.X[train.y == k].mean(axis=0) for k in range(int(train.y.max()) + 1)])

    def predict(self, X):
        diff = X[:, None, :] - self.centroids[None]
        distance = np.abs(diff).sum(-1) if self.metric == "manhattan" else (diff**2).sum(-1)
        return distance.argmin(axis=1)

    def save(self, directory):
        (Path(directory) / "centroids.json").write_text(json.dumps(self.centroids.tolist()))

    def load(self, directory):
        self.centroids = np.array(json.loads((Path(directory) / "centroids.json").read_text()))


@hookimpl
def register_models(register):
    register("nearest_centroid", NearestCentroid, description="nearest centroid classifier (NumPy)")


@hookimpl
def register_config_dirs(register):
    register(Path(__file__).parent / "conf")
