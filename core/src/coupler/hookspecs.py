"""Coupler's hook specifications: the whole plugin surface, in one module.

A plugin is a module (or any object) with functions decorated by ``coupler.hookimpl`` whose names match the
specifications below. It is found through the ``coupler`` entry-point group of its distribution::

    [project.entry-points.coupler]
    myplugin = "coupler_myplugin.plugin"

Two families of hooks exist.

*Registration hooks* (``register_*``) are called once per process, when the plugin manager loads plugins.
Each receives a ``register`` callable; call it once per component::

    register(name, factory, description="one line for `coupler plugins`", default=False)

``default=True`` offers the component as its kind's default choice (the scikit-learn plugin offers
``logistic_regression``, the core's data sets ``iris``); of several offers, the plugin first in precedence wins.
``factory`` is called later, only when a run selects the component, with the keys of the component's
config node as keyword arguments (``name`` excluded). Keep heavy imports (torch, xgboost, sklearn) inside the
factory or in a module the factory imports, so that ``coupler --help`` and ``coupler plugins`` stay instant.
A name registered by two plugins is an error naming both: the plugin later in precedence (the built-ins, then
Coupler's own distributions, then the others by distribution name) is reported as failed and rolled back,
whatever order the two load in.

*Extension hooks* let a plugin grow the surface itself, as pytest's ``pytest_addhooks`` does: ``add_hookspecs``
adds hook specifications of its own, ``register_kinds`` declares component kinds (each with its config group
and its registration hook), ``register_config_groups`` declares groups of settings. The plugin manager calls
them on every plugin before any registration hook, so a plugin may implement another plugin's hooks. The torch
engine (``coupler-torch``) declares ``optimizer`` and ``scheduler`` so, with ``register_optimizers`` and
``register_schedulers`` in ``coupler_torch.hookspecs``, and the ``trainer`` group.

*Lifecycle hooks* (``on_*``) are called during a run, on every plugin and on every callback that the run's
config selects. Their return values are ignored. ``run`` is the ``coupler.context.RunContext`` of the run.

None of the hooks is ``firstresult``: registration collects from every plugin, and lifecycle events are
broadcast to every observer.

**The plugin API version.** ``API_VERSION`` versions this surface: the hooks below, the component contracts
they name (``coupler.components``, ``coupler.dataset.Dataset``, ``coupler.context.RunContext``). Hooks and kinds a
plugin adds are versioned by that plugin's own release (``coupler-torch``'s ``register_optimizers``). A plugin
module declares the range it supports as a PEP 440 specifier, ``COUPLER_API = ">=1.0,<2"``; the plugin manager
skips a plugin whose range excludes ``API_VERSION``, and says which versions it needs. The **major** number goes
up when a change can break a plugin: a hook removed or renamed, an argument removed or changed in meaning, a
contract method or attribute that plugins implement changed, a required one added. A hook that moves, with its
name and contract, into the plugin that alone gives it meaning is not removed for the plugins that implement it:
they already need that plugin. The **minor** number goes up for additions a plugin may ignore: a new hook, a new
optional argument, attribute or method, a new ``RunContext`` field.

API 1.1 added the extension hooks, ``default=`` and ``resume_point``, and moved ``register_optimizers`` /
``register_schedulers`` (with ``RunContext.optimizer``, ``scheduler`` and ``resume_from``, which only the torch
engine read) into coupler-torch under the same names and contracts, so a plugin written for 1.0 still loads.
API 1.2 added ``register(..., schema=)``: a component's or settings group's parameters as a dataclass
(``coupler.schema``).
API 1.3 added ``register_trackers`` and its kind ``tracker`` (``tracking=[NAME,...]``).
API 1.4 added ``on_run_failed``.
"""

from __future__ import annotations

import pluggy

PROJECT = "coupler"
#: The plugin API this core provides (see "The plugin API version" above).
API_VERSION = "1.4"
#: The ``COUPLER_API`` a plugin written against this API declares: this version up to the next major one.
API_RANGE = f">={API_VERSION},<{int(API_VERSION.split('.')[0]) + 1}"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration hooks ------------------------------------------------------------------------------------


@hookspec
def register_data_loaders(register):
    """Register data loaders, selected by ``data=NAME``.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None)``. ``factory(**config)`` receives the
        ``data`` config node's keys (``name`` excluded) and returns a ``coupler.dataset.Dataset``.
    :return: None.
    """


@hookspec
def register_models(register):
    """Register models, selected by ``model=NAME``.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, default=False, schema=None)`` (every
        registration hook's ``register`` takes the same arguments: ``default=True`` offers the component as its
        group's default, ``schema`` is the dataclass of its parameters, ``coupler.schema``; without one, the
        factory's keyword parameters are its schema). ``factory(task=..., seed=..., **config)``
        receives the task (``"binary"``, ``"multiclass"`` or ``"regression"``), the run's seed and the
        ``model`` config node's keys (``name`` excluded); it returns a ``coupler.components.Model``.
        The same factory rebuilds the model from the saved config when a run is reloaded, before
        ``Model.load`` restores its state.
    :return: None.
    """


@hookspec
def register_callbacks(register):
    """Register callbacks, selected by ``callbacks=[NAME,...]``.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None)``. ``factory(**config)`` receives the
        callback's config node (``name`` excluded) and returns an object whose methods are lifecycle hook
        implementations (decorated with ``coupler.hookimpl``); it is registered with the plugin manager for
        the length of one run.
    :return: None.
    """


@hookspec
def register_metrics(register):
    """Register metrics, selected by ``metrics=[NAME,...]``.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None)``. ``factory(**config)`` returns a
        ``coupler.components.Metric``.
    :return: None.
    """


@hookspec
def register_exporters(register):
    """Register exporters, selected by ``exporters=[NAME,...]``; they run after training and evaluation.

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None)``. ``factory(**config)`` returns a
        ``coupler.components.Exporter``.
    :return: None.
    """


@hookspec
def register_trackers(register):
    """Register experiment trackers, selected by ``tracking=[NAME,...]`` (coupler-mlflow, coupler-tensorboard).

    Called once, when plugins are loaded.

    :param register: ``register(name, factory, description=None, schema=None)``. ``factory(**config)`` receives
        the tracker's node ``tracking.NAME`` (``name`` excluded) and returns a callback, as ``register_callbacks``'
        factories do; the run registers it for its length alongside ``callbacks=``. A tracker that writes into the
        run directory names the entries it makes there in its attribute ``entries`` (``("tensorboard",)``): a
        resume accepts them in an interrupted run's directory.
    :return: None.
    """


@hookspec
def register_config_dirs(register):
    """Contribute Hydra config files, so that installing the plugin adds its ``group=option`` choices.

    Called once, when plugins are loaded.

    :param register: ``register(path)`` with a directory laid out as Hydra config groups
        (``model/NAME.yaml``, ``data/NAME.yaml``, ...). The directory joins the config search path. A
        registered component without a file of its own still gets a minimal config node ``{name: NAME}``.
    :return: None.
    """


# --- extension hooks ---------------------------------------------------------------------------------------


@hookspec
def add_hookspecs(register):
    """Add hook specifications of the plugin's own (pluggy's ``PluginManager.add_hookspecs``).

    Called once, when plugins are loaded. It runs on every plugin before any registration hook.

    :param register: ``register(namespace)`` with a module or class whose functions are marked with
        ``coupler.hookspec`` (the torch engine's ``coupler_torch.hookspecs``).
    :return: None.
    """


@hookspec
def register_kinds(register):
    """Declare component kinds of the plugin's own, each selected by a config group and registered by a hook.

    Called once, when plugins are loaded. It runs after ``add_hookspecs`` and before any registration hook. A
    kind so declared is listed by ``coupler plugins`` and ``coupler train --help``, chosen with ``GROUP=NAME``, checked
    by name and by the conformance kit, exactly as the core's.

    :param register: ``register(kind, *, group, hook, many=False, contract="", checks=None, used_by=None)``:
        ``hook`` is the registration hook (``register_NAMES(register)``, added with ``add_hookspecs``) whose
        components the kind holds; ``many`` makes ``group`` a list group (``group=[a,b]``); ``contract`` says in
        one line what a factory returns; ``checks`` maps a conformance rule to ``check(component)``, which raises
        ``coupler.conformance.RuleBroken(problem, fix)``; ``used_by`` names the ``Model`` attribute of models
        that use the kind (any other model given ``GROUP=NAME`` is refused before it trains).
    :return: None.
    """


@hookspec
def register_config_groups(register):
    """Declare config groups of settings that select no component (the torch engine's ``trainer``).

    Called once, when plugins are loaded. It runs with ``register_kinds``.

    :param register: ``register(group, *, default=None, description="", test_overrides=(), engines=(),
        schema=None)``: the group's options are the files ``GROUP/OPTION.yaml`` of the plugin's config directories;
        ``default`` is the option every run gets; ``schema``, a dataclass of the settings (``coupler.schema``), is the
        default option's node when no file provides it and checks every option's node; ``test_overrides`` make a run as short as a test allows (the conformance kit adds
        them to runs of the group's engines); ``engines`` names the engines (``Model.engine``) whose models read
        the group, so that a run of another model that changes it is refused before any data is read.
    :return: None.
    """


@hookspec
def resume_point(directory):
    """Asked whether a run in progress can continue, and from where.

    The answer is the file an engine wrote in ``directory`` to continue the run from, or None.
    ``coupler train resume=RUN_DIR`` requires one, and a run that stops keeps its directory while one exists.
    The engine reads ``run.config["resume"]`` (the run directory) in ``Model.fit``.

    :param directory: a ``pathlib.Path``.
    :return: a ``pathlib.Path`` inside ``directory``, or None.
    """


# --- lifecycle hooks ---------------------------------------------------------------------------------------


@hookspec
def on_run_start(run):
    """A run begins: its config is resolved and its directory exists; no data is loaded yet.

    :param run: the ``RunContext``.
    :return: ignored.
    """


@hookspec
def on_fit_start(run, model):
    """Training is about to start; the data is loaded, split and preprocessed.

    :param run: the ``RunContext`` (``run.task``, ``run.feature_names`` are set).
    :param model: the ``Model`` about to be fitted.
    :return: ignored.
    """


@hookspec
def on_epoch_end(run, epoch, metrics):
    """An engine finished one epoch (a boosting round, a pass over the data) and measured it.

    Set ``run.should_stop = True`` to ask the engine to stop after this epoch (early stopping does so).

    :param run: the ``RunContext``.
    :param epoch: the epoch's number, from 0.
    :param metrics: ``{name: number}`` measured at the end of the epoch, for example ``{"val_loss": 0.3}``.
    :return: ignored.
    """


@hookspec
def on_fit_end(run, model):
    """Training finished (or stopped early).

    :param run: the ``RunContext``.
    :param model: the fitted ``Model``.
    :return: ignored.
    """


@hookspec
def on_evaluate_end(run, split, metrics):
    """A split was evaluated.

    :param run: the ``RunContext``.
    :param split: ``"val"``, ``"test"``, or ``"data"`` for a whole data set given to ``coupler evaluate``.
    :param metrics: ``{name: number}``.
    :return: ignored.
    """


@hookspec
def on_export(run, exporter, paths):
    """An exporter wrote its files into the run directory.

    :param run: the ``RunContext``.
    :param exporter: the exporter's registered name.
    :param paths: the list of ``pathlib.Path`` it wrote.
    :return: ignored.
    """


@hookspec
def on_run_end(run, metrics):
    """The run finished and its directory is complete and sealed.

    Write nothing into ``run.directory`` here: its manifest already lists every file's checksum, so a file
    added or changed now makes ``coupler evaluate`` and ``coupler predict`` refuse the run (the conformance
    kit checks this). Files a run should keep are written in an earlier hook (``on_fit_end``,
    ``on_evaluate_end``) and sealed with it; here, write only outside the run directory, or log.

    :param run: the ``RunContext``.
    :param metrics: ``{"val": {name: number}, "test": {name: number}}`` (and ``"cv"`` under cross-validation), as
        written to ``metrics.json``, which also records the run's ``timing``.
    :return: ignored.
    """


@hookspec
def on_run_failed(run, error):
    """The run failed after ``on_run_start`` was called, and ``on_run_end`` will not come.

    An exception, a bad value found in the data, or Ctrl-C (``KeyboardInterrupt``) stopped it; or another
    observer's ``on_run_start`` raised, so that this one's may not have run (a tracker that started nothing has
    nothing to mark). Called once,
    before the run's directory is cleaned up (a run that can be resumed keeps its resume point). A tracker marks
    its record failed here. An exception from this hook is logged and never hides ``error``, which is raised on.

    :param run: the ``RunContext``.
    :param error: the exception (a ``BaseException``).
    :return: ignored.
    """
