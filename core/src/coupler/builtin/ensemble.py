"""The built-in ``ensemble`` model: voting or stacking over other model components, of any engine.

``model=ensemble model.members='[{name: logistic_regression}, {name: xgboost, num_boost_round: 50}, {name: mlp}]'``
trains each member through the registry with the run's task and seed, on the run's one shared preprocessing, and
combines them (``model.method``):

- ``soft``: the (weighted) mean of the members' class probabilities; for regression, of their predictions;
- ``hard``: the (weighted) majority of the members' labels (no probabilities); for regression, the mean;
- ``stacking``: a logistic regression (classification) or ridge (regression) meta-model, fitted on out-of-fold
  member predictions of the training rows (``model.folds`` seeded folds, each member refitted through its own
  ``fit``), then the members are fitted on every training row.

A member is a component's config node (``{name: xgboost, ...}``, checked by that component's schema before any
data is read: a bad key is one line naming ``model.members[1].KEY``) or a finished run (``{run: DIR}``): its
manifest must verify (``coupler.run_directory.read_manifest``), its model is rebuilt by its recorded component name
and restored with its own ``Model.load``, and it is not trained again. A run member receives this run's
preprocessing and is measured on this run's test rows, so before it predicts its recorded ``data`` node, data
fingerprint, ``seed``, ``split.*`` and ``preprocess.*``, classes, model input columns and input format must equal
this run's (``check_run_member``): otherwise it was trained on other data, other rows (this run's test rows among
them) or other preprocessing, and it is refused in one line naming what differs.

What the ensemble can do is what all its members share (``Model`` capabilities: tasks, probabilities per task, row
weights, epoch events, input formats); a member that reads another input than the others is refused by name.

``save`` writes each member with its own ``save`` under ``members/<i>-<name>/`` and ``ensemble.json``: the members'
component names and config nodes, the method, the weights, and the meta-model's coefficients as numbers (no
pickle). ``load`` rebuilds each member by looking its name up in the registry (nothing names code in the file) and
checking its node against that component's schema.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from coupler.components import CLASSIFICATION, TASKS, Model, Split, declared_model, gives_proba
from coupler.errors import ConfigError, CouplerError
from coupler.hookspecs import hookimpl
from coupler.schema import param

COUPLER_API = ">=1.2,<2"  # the plugin API versions this plugin supports (coupler.hookspecs.API_VERSION)

METHODS = ("soft", "hard", "stacking")
STATE = "ensemble.json"


@dataclass
class EnsembleSchema:
    """``model=ensemble``: the members, how they are combined, and their weights."""

    members: Annotated[list[dict], "a list of model nodes {name: NAME, ...} or runs {run: DIR}"] = param(
        help="the members: model nodes ({name: xgboost, num_boost_round: 50}) or finished runs ({run: DIR})")
    method: str = param("soft", choices=METHODS, help="soft: mean of probabilities; hard: majority of labels; "
                                                      "stacking: a meta-model on out-of-fold predictions")
    weights: Annotated[list[float] | None, "null, or a list of numbers >= 0"] = param(
        None, help="one weight per member (soft and hard voting); null: equal")
    folds: int = param(5, ge=2, help="stacking: the folds of the out-of-fold predictions the meta-model learns")

    @staticmethod
    def check_parts(node: dict, key: str, registry) -> None:
        """Each member against its own component's schema, each run member's seal, the weights, and one input
        format every member reads: before any data is read (``Component.check``)."""
        check_members(node, key, registry)


# --- checking the members, before any data ------------------------------------------------------------------


def check_members(node: dict, key: str, registry) -> list[tuple[str, ...]]:
    """Refuse a bad member, weight or mix of inputs (one line naming ``KEY.members[i]``); return each member's input
    formats."""
    members, weights = node.get("members") or [], node.get("weights")
    if not members:
        raise ConfigError(f"{key}.members", members, "at least one member: model.members='[{name: "
                          "logistic_regression}, {name: xgboost}]' (model nodes) or [{run: DIR}] (finished runs)")
    if weights is not None and (len(weights) != len(members) or any(w < 0 for w in weights) or not sum(weights)):
        raise ConfigError(f"{key}.weights", weights, f"{len(members)} non-negative numbers, one per member, not all "
                          f"0 (or null: equal weights)")
    if weights is not None and node.get("method") == "stacking":
        raise ConfigError(f"{key}.weights", weights, "null with model.method=stacking (the meta-model weighs the "
                          "members), or model.method=soft or hard")
    formats = [_member_formats(member, f"{key}.members[{i}]", registry) for i, member in enumerate(members)]
    shared_input_formats(formats, members, key)
    return formats


def _member_formats(member: dict, key: str, registry) -> tuple[str, ...]:
    """Check one member; its input formats (a component's declared ones, a run's recorded one)."""
    if not isinstance(member, dict) or ("name" in member) == ("run" in member):
        raise ConfigError(key, member, "a model node {name: NAME, KEY: VALUE, ...} or a finished run {run: DIR}")
    if "run" in member:
        extra = sorted(set(member) - {"run"})
        if extra or not isinstance(member["run"], str):
            raise ConfigError(f"{key}.{extra[0]}" if extra else f"{key}.run", member.get(extra[0]) if extra
                              else member["run"], "a finished run takes only run: DIR (its directory)")
        from coupler.run_directory import read_manifest

        manifest = read_manifest(Path(member["run"]))
        return (manifest["features"]["input_format"],)
    component = _component(registry, member["name"], key)
    component.check(key, member)
    declared = declared_model(component.factory)
    if declared is None:
        return ()  # read once it is built
    return _formats(declared)


def _component(registry, name, key: str):
    if registry is None:
        raise CouplerError(f"{key}: an ensemble builds its members through a registry; build it with "
                           f"Registry.get('model', 'ensemble').build(...)")
    from coupler.errors import did_you_mean

    names = [n for n in registry.names("model")]
    if not isinstance(name, str) or name not in names:
        raise ConfigError(f"{key}.name", name, f"a model component: {', '.join(names)}.{did_you_mean(str(name), names)}")
    return registry.get("model", name)


def _formats(model) -> tuple[str, ...]:
    formats = tuple(getattr(model, "input_formats", None) or (getattr(model, "input_format", "matrix"),))
    return formats + (("files",) if getattr(model, "reads_files", False) and "files" not in formats else ())


def shared_input_formats(formats: list[tuple[str, ...]], members: list, key: str) -> tuple[str, ...]:
    """The input formats every member reads, in the first member's order of preference; a member that shares none
    with those before it is refused by name (one preprocessing feeds them all)."""
    shared: tuple[str, ...] | None = None
    for i, own in enumerate(formats):
        if not own:
            continue
        together = own if shared is None else tuple(f for f in shared if f in own)
        if not together:
            name = members[i].get("name") or f"run {members[i].get('run')}"
            raise ConfigError(f"{key}.members[{i}]", name, f"a member that reads {' or '.join(shared)} like the "
                              f"members before it: one preprocessing feeds every member, and {name!r} reads "
                              f"{' or '.join(own)}; ensemble models of one kind of input (e.g. table models)")
        shared = together
    return shared or ("matrix",)


# --- the model ----------------------------------------------------------------------------------------------


@dataclass
class Member:
    """One member: its component name and config node (what rebuilds it), the model, and the run it came from."""

    name: str
    node: dict
    model: Any
    run: str | None = None
    #: a run member's verified manifest
    manifest: dict | None = None
    #: a run member's ``config.yaml``
    config: dict | None = None

    @property
    def fitted(self) -> bool:
        """A run member arrives trained: the ensemble never fits it again."""
        return self.run is not None


class Ensemble(Model):
    """Members of any engines combined by voting or stacking (see the module docstring)."""

    def __init__(self, task: str, seed: int, members: list[dict], method: str, weights: list[float] | None,
                 folds: int, registry):
        self.task, self.seed, self.method, self.folds, self.registry = task, seed, method, folds, registry
        self.specs = [dict(member) for member in members]
        self.weights = list(weights) if weights is not None else None
        self.n_classes = 0
        self.meta: dict | None = None
        self._members: list[Member] | None = None  # built on first use, or by ``load``
        self._check_task()

    def _check_task(self) -> None:
        """A member component that declares it cannot learn the task is refused now (before the members are built)."""
        for i, spec in enumerate(self.specs):
            if "name" not in spec or self.registry is None:
                continue
            declared = declared_model(_component(self.registry, spec["name"], f"model.members[{i}]").factory)
            learns = tuple(getattr(declared, "tasks", None) or TASKS)
            if declared is not None and self.task not in learns:
                raise ConfigError(f"model.members[{i}]", spec["name"], f"a member that learns a {self.task} task; "
                                  f"{spec['name']!r} learns {', '.join(learns)}")

    # --- the members and what they share -----------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        if self._members is None:
            check_members({"members": self.specs, "weights": self.weights, "method": self.method}, "model",
                          self.registry)
            self._members = [self._open(spec, i) for i, spec in enumerate(self.specs)]
            self._check_method()
        return self._members

    def _open(self, spec: dict, index: int) -> Member:
        key = f"model.members[{index}]"
        if "run" in spec:
            return open_run_member(spec["run"], self.registry, self.task, key)
        component = _component(self.registry, spec["name"], key)
        node = component.node(spec)
        return Member(spec["name"], node, component.build(key, spec, task=self.task, seed=self.seed))

    def _check_method(self) -> None:
        if self.task in CLASSIFICATION and self.method == "soft":
            for i, member in enumerate(self._members):
                if not gives_proba(member.model, self.task):
                    raise ConfigError("model.method", "soft", f"hard or stacking: member {i} ({member.name!r}) gives "
                                      f"no class probabilities to average")
        for i, member in enumerate(self._members):
            if self.task not in (getattr(member.model, "tasks", None) or TASKS):
                raise ConfigError(f"model.members[{i}]", member.name, f"a member that learns a {self.task} task")

    def _all(self, capability: str) -> bool | None:
        values = [getattr(m.model, capability, None) for m in self.members]
        return False if False in values else True if all(v is True for v in values) else None

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in TASKS if all(t in (getattr(m.model, "tasks", None) or TASKS) for m in self.members))

    @property
    def proba_tasks(self) -> tuple[str, ...]:
        if self.method == "hard":
            return ()
        if self.method == "stacking":
            return tuple(t for t in CLASSIFICATION if t in self.tasks)
        return tuple(t for t in CLASSIFICATION if all(gives_proba(m.model, t) for m in self.members))

    @property
    def reports_epochs(self) -> bool | None:
        return self._all("reports_epochs")

    @property
    def sample_weights(self) -> bool:
        return bool(self._all("sample_weights"))

    @property
    def engines(self) -> tuple[str, ...]:
        """Every member's engine (a settings group of any of them, e.g. ``trainer``, applies)."""
        return tuple(dict.fromkeys(e for m in self.members if (e := getattr(m.model, "engine", None))))

    @property
    def engine(self) -> str | None:
        engines = self.engines
        return engines[0] if len(engines) == 1 and all(getattr(m.model, "engine", None) for m in self.members) \
            else None

    @property
    def input_formats(self) -> tuple[str, ...]:
        formats = shared_input_formats([_formats(m.model) for m in self.members], self.specs, "model")
        return tuple(f for f in formats if f != "stream" or self.method != "stacking")  # stacking: rows in memory

    @property
    def reads_files(self) -> bool:
        return "files" in self.input_formats

    # --- training ------------------------------------------------------------------------------------------

    def fit(self, train: Split, val: Split | None, run) -> None:
        self.n_classes = len(run.classes)
        for i, member in enumerate(self.members):
            if member.fitted and getattr(run, "fold", None) is not None:
                from coupler.errors import ConfigError

                raise ConfigError("cv.folds", run.config.get("cv", {}).get("folds"),
                                  f"0 with model.members[{i}].run: a finished run trained on rows of every fold, so "
                                  f"each fold's score would count rows it learned; train the member inside the "
                                  f"ensemble ({{name: {member.name}}}) to cross-validate it")
            if member.fitted:
                check_run_member(member, i, run)
        if self.method == "stacking":
            self.meta = fit_meta(self, train, run)
        for member in self.members:
            if not member.fitted:
                run.should_stop, run.best_epoch, run.best_score = False, None, None  # each member's own epochs
                member.model.fit(train, val, run)
        run.should_stop = False
        self._record_run_members(run.config)

    def _record_run_members(self, config: dict) -> None:
        """In the run's config (``config.yaml`` is written after ``fit``), a run member becomes its component node:
        the ensemble holds its state, so reloading it never reads that directory again (``ensemble.json`` keeps
        where it came from)."""
        node = config.get("model") if isinstance(config, dict) else None
        if not isinstance(node, dict) or node.get("name") != "ensemble" or node.get("members") != self.specs:
            return
        node["members"] = [{"name": m.name, **m.node} if m.fitted else spec for m, spec in zip(self.members, self.specs)]

    def _weights(self):
        import numpy as np

        weights = np.asarray(self.weights if self.weights is not None else [1.0] * len(self.members), dtype=float)
        return weights / weights.sum()

    def predict_proba(self, X):
        if self.task not in self.proba_tasks:
            return None
        if self.method == "stacking":
            return meta_proba(self.meta, member_features(self.members, X, self.task, self.n_classes))
        import numpy as np

        probas = [np.asarray(m.model.predict_proba(X), dtype=float) for m in self.members]
        return np.tensordot(self._weights(), np.stack(probas), axes=1)

    def predict(self, X):
        import numpy as np

        if self.task not in CLASSIFICATION:
            if self.method == "stacking":
                return meta_values(self.meta, member_features(self.members, X, self.task, self.n_classes))
            predictions = np.stack([np.asarray(m.model.predict(X), dtype=float) for m in self.members])
            return np.tensordot(self._weights(), predictions, axes=1)
        if self.method != "hard":
            return np.asarray(self.predict_proba(X)).argmax(axis=1)
        labels = np.stack([np.asarray(m.model.predict(X)).astype(int) for m in self.members])
        votes = np.zeros((labels.shape[1], max(self.n_classes, int(labels.max()) + 1)))
        for weight, row in zip(self._weights(), labels):
            votes[np.arange(labels.shape[1]), row] += weight
        return votes.argmax(axis=1)  # a tie goes to the lowest class code

    # --- saving and loading ---------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        from coupler.run_directory import atomic_write_text

        records = []
        for i, member in enumerate(self.members):
            place = Path(directory) / "members" / f"{i}-{member.name}"
            place.mkdir(parents=True)
            member.model.save(place)
            records.append({"name": member.name, "node": member.node, "run": member.run})
        state = {"method": self.method, "weights": self.weights, "n_classes": self.n_classes, "members": records,
                 "meta": self.meta}
        atomic_write_text(Path(directory) / STATE, json.dumps(state, indent=2, default=_number))

    def load(self, directory: Path) -> None:
        """Rebuild the members ``save`` recorded: each name looked up in the registry, each node checked by that
        component's schema, each state restored by the member's own ``load``."""
        directory = Path(directory)
        state = json.loads((directory / STATE).read_text())
        records = state.get("members") if isinstance(state, dict) else None
        if not isinstance(records, list) or not records or state.get("method") not in METHODS:
            raise CouplerError(f"{directory / STATE}: not an ensemble's state (members, method)")
        members = []
        for i, record in enumerate(records):
            if not isinstance(record, dict) or not isinstance(record.get("node"), dict):
                raise CouplerError(f"{directory / STATE}: member {i} is not a {{name, node}} record")
            key = f"model.members[{i}]"
            component = _component(self.registry, record.get("name"), key)
            model = component.build(key, record["node"], task=self.task, seed=self.seed)
            model.load(directory / "members" / f"{i}-{component.name}")
            members.append(Member(component.name, record["node"], model, record.get("run")))
        weights = state.get("weights")
        if weights is not None and (not isinstance(weights, list) or len(weights) != len(members)
                                    or not all(isinstance(w, (int, float)) and w >= 0 for w in weights)
                                    or not sum(weights)):
            raise CouplerError(f"{directory / STATE}: weights must be null or one number >= 0 per member")
        self._members, self.method, self.weights = members, state["method"], weights
        self.n_classes = int(state.get("n_classes") or 0)
        self.meta = check_meta(state.get("meta"), directory / STATE) if self.method == "stacking" else None


def _number(value):
    """numpy scalars in ``ensemble.json`` as plain numbers."""
    return value.item() if hasattr(value, "item") else str(value)


# --- run members --------------------------------------------------------------------------------------------


def open_run_member(path: str, registry, task: str, key: str) -> Member:
    """A finished run's model, read-only: its manifest verified (seal and checksums), its model rebuilt by its
    recorded component name and restored with that component's own ``load``.

    It is built in this process's working directory, not the one its manifest names (as ``FinishedRun`` does): the
    ensemble's own reload (``Ensemble.load``) rebuilds the member's node in this run's working directory, so a node that
    resolved only from the member's directory would train here and fail to reload; and a member is opened in the
    middle of a run, whose process must not change directory."""
    from omegaconf import OmegaConf

    from coupler.run_directory import read_manifest

    directory = Path(path)
    manifest = read_manifest(directory)
    if manifest["task"] != task:
        raise ConfigError(f"{key}.run", path, f"a run of a {task} task (this data's); it learned a "
                                              f"{manifest['task']} task")
    config = OmegaConf.to_container(OmegaConf.load(directory / "config.yaml"))
    component = _component(registry, manifest["components"]["model"]["name"], key)
    model = component.build(key, config["model"], task=manifest["task"], seed=manifest["seed"])
    model.load(directory.resolve() / "model")
    return Member(component.name, component.node(config["model"]), model, str(path), manifest, config)


#: the config nodes a run member must share with this run: the data it read, and (with the seed) the rows it
#: trained on and how they were preprocessed
SHARED_SETTINGS = ("data", "split", "preprocess")


def check_run_member(member: Member, index: int, run) -> None:
    """A run member is measured on this run's test rows through this run's preprocessing: refuse it (one line)
    unless its recorded ``data`` node, data fingerprint, seed, ``split.*``, ``preprocess.*``, classes, model input
    columns and input format are this run's."""
    manifest, config = member.manifest, member.config or {}
    ours = run.config if isinstance(run.config, dict) else {}
    differ = []
    for setting in SHARED_SETTINGS:
        differ += _differences(setting, ours.get(setting), config.get(setting))
    if manifest.get("data_fingerprint") != run.data_fingerprint:
        differ.append("the data's contents (data fingerprint)")
    if manifest.get("seed") != run.seed:
        differ.append(f"seed ({run.seed} here, {manifest.get('seed')} in that run)")
    features = manifest["features"]
    for what, theirs, here in (("classes", manifest["classes"], list(run.classes)),
                               ("model input columns", features["model_input"], list(run.feature_names)),
                               ("input format", features["input_format"], run.input_format)):
        if theirs != here:
            differ.append(what)
    if differ:
        raise ConfigError(f"model.members[{index}].run", member.run,
                          f"a run trained on this run's data, seed, split and preprocessing (it differs in "
                          f"{'; '.join(differ)}: its training rows or features are not this run's); retrain it "
                          f"with the same data, seed, split.* and preprocess.*, or train the member inside the "
                          f"ensemble: {{name: {member.name}}}")


def _differences(key: str, here, theirs) -> list[str]:
    """The dotted keys whose values differ between two config nodes, each with both values."""
    if isinstance(here, dict) and isinstance(theirs, dict):
        return [d for k in sorted(set(here) | set(theirs), key=str)
                for d in _differences(f"{key}.{k}", here.get(k), theirs.get(k))]
    return [] if here == theirs else [f"{key} ({here!r} here, {theirs!r} in that run)"]


# --- stacking -----------------------------------------------------------------------------------------------


def member_features(members: list[Member], X, task: str, n_classes: int):
    """What the meta-model reads: each member's class probabilities (its labels one-hot, without them), or its
    predictions for regression, side by side."""
    import numpy as np

    columns = []
    for member in members:
        columns.append(_member_output(member.model, X, task, n_classes))
    return np.hstack(columns)


def _member_output(model, X, task: str, n_classes: int):
    import numpy as np

    if task not in CLASSIFICATION:
        return np.asarray(model.predict(X), dtype=float).reshape(-1, 1)
    proba = model.predict_proba(X) if gives_proba(model, task) else None
    if proba is not None:
        return np.asarray(proba, dtype=float)
    return np.eye(n_classes)[np.asarray(model.predict(X)).astype(int)]


def fit_meta(ensemble: Ensemble, train: Split, run) -> dict:
    """The meta-model's coefficients, fitted on out-of-fold member predictions of the training rows: seeded
    (stratified) folds, each member built afresh through the registry and fitted with its own ``fit`` on the other
    folds (a quiet run: no events, no files in the run directory); a run member predicts every row as it is."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    task, n = ensemble.task, len(train)
    classify = task in CLASSIFICATION
    most = int(np.unique(train.y, return_counts=True)[1].min(initial=n)) if classify else n
    if ensemble.folds > most:
        from coupler.errors import ConfigError

        raise ConfigError("model.folds", ensemble.folds,
                          f"at most {most}: stacking splits the {n} training rows into folds"
                          f"{' of every class, and the smallest class has ' + str(most) if classify else ''}")
    splitter = (StratifiedKFold if classify else KFold)(n_splits=ensemble.folds, shuffle=True,
                                                        random_state=ensemble.seed)
    blocks = [None] * len(ensemble.members)
    for i, member in enumerate(ensemble.members):
        if member.fitted:
            blocks[i] = _member_output(member.model, train.X, task, ensemble.n_classes)
    with tempfile.TemporaryDirectory(prefix="coupler-stacking-") as scratch:
        quiet = dataclasses.replace(run, hooks=_Quiet(), history=[], callbacks={}, directory=Path(scratch),
                                    config=copy.deepcopy(run.config), should_stop=False, best_epoch=None,
                                    best_score=None)
        for rest, held in splitter.split(np.zeros(n), train.y if classify else None):
            part = Split(_rows(train.X, rest), train.y[rest], None if train.weight is None else train.weight[rest])
            for i, member in enumerate(ensemble.members):
                if member.fitted:
                    continue
                spec = {"name": member.name, **member.node}
                model = _component(ensemble.registry, member.name, f"model.members[{i}]").build(
                    f"model.members[{i}]", spec, task=task, seed=ensemble.seed)
                quiet.should_stop, quiet.best_epoch, quiet.best_score = False, None, None
                model.fit(part, None, quiet)
                out = _member_output(model, _rows(train.X, held), task, ensemble.n_classes)
                if blocks[i] is None:
                    blocks[i] = np.zeros((n, out.shape[1]))
                blocks[i][held] = out
    return fit_meta_model(np.hstack(blocks), train.y, train.weight, task, ensemble.seed)


def _rows(X, rows):
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


class _Quiet:
    """Hooks that hear nothing: the stacking folds' fits are not the run's epochs."""

    def __getattr__(self, name):
        return lambda **kwargs: []


def fit_meta_model(features, y, weight, task: str, seed: int) -> dict:
    """A logistic regression (classification) or ridge (regression), kept as its coefficients only."""
    if task in CLASSIFICATION:
        from sklearn.linear_model import LogisticRegression

        meta = LogisticRegression(max_iter=1000, random_state=seed).fit(features, y, sample_weight=weight)
    else:
        from sklearn.linear_model import Ridge

        meta = Ridge(alpha=1.0).fit(features, y, sample_weight=weight)
    coef = meta.coef_.reshape(1, -1) if meta.coef_.ndim == 1 else meta.coef_
    return {"kind": "logistic" if task in CLASSIFICATION else "ridge", "coef": coef.tolist(),
            "intercept": [float(v) for v in (meta.intercept_.ravel() if hasattr(meta.intercept_, "ravel")
                                              else [meta.intercept_])]}


def check_meta(meta, where: Path) -> dict:
    """A meta-model read from a run directory: numbers of consistent shapes, or an error naming the file."""
    import numpy as np

    try:
        coef, intercept = np.asarray(meta["coef"], dtype=float), np.asarray(meta["intercept"], dtype=float)
        assert meta["kind"] in ("logistic", "ridge") and coef.ndim == 2 and intercept.shape == (coef.shape[0],)
    except Exception:
        raise CouplerError(f"{where}: the stacking meta-model is not {{kind, coef, intercept}} numbers") from None
    return meta


def _decision(meta: dict, features):
    import numpy as np

    return features @ np.asarray(meta["coef"], dtype=float).T + np.asarray(meta["intercept"], dtype=float)


def meta_proba(meta: dict, features):
    """A logistic regression's probabilities from its coefficients: sigmoid for two classes, else softmax."""
    import numpy as np

    scores = _decision(meta, features)
    if scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def meta_values(meta: dict, features):
    return _decision(meta, features)[:, 0]


# --- registration -------------------------------------------------------------------------------------------


def build_ensemble(task: str, seed: int, members: list[dict], method: str, weights: list[float] | None, folds: int,
                   registry=None) -> Ensemble:
    return Ensemble(task, seed, members, method, weights, folds, registry)


build_ensemble.takes_registry = True  # Component.build passes the registry that holds the members' components


@hookimpl
def register_models(register):
    register("ensemble", build_ensemble, schema=EnsembleSchema,
             description="voting or stacking over other models' configs or finished runs, of any engines")
