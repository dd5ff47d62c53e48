"""One worker of a study: ``coupler train -m search=NAME`` runs it (``hydra_plugins.coupler_optuna_sweeper``).

The worker asks Optuna for a trial (ask/tell), launches that one trial's job through Hydra's launcher, tells the
study its outcome, and asks again, until the study holds ``search.n_trials`` trials. There is no batch: several
workers sharing ``search.storage`` (``search.n_jobs`` on one machine, or the same command started elsewhere)
each start a new trial as soon as their last one ends. Counting and asking happen under a file lock beside a file
storage, so that workers never overshoot ``n_trials``. Unless ``hydra.sweep.dir`` is given, a search's sweep
directory is ``multirun/search/STUDY_NAME`` (``hydra_plugins.coupler_optuna_sweeper.config.SWEEP_DIR``), so the
literal same command after a kill finds the study in its storage: the trials a dead worker left running are marked
failed and run again; the finished ones are kept. Rerun once the study holds its ``n_trials`` and its record, the
command says so and runs and rewrites nothing.

The study reads validation scores only (``results["val"]``, or the CV mean): each trial's job runs with
``split.measure_test=false``, so it never reads the test rows. After the last trial the best run alone is tested
(``coupler_optuna.record``, which writes the record to the sweep directory), and the refit once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

from coupler.errors import CouplerError

log = logging.getLogger("coupler.search")

#: set in the worker processes a search starts for ``search.n_jobs`` > 1: they run trials and write no record
WORKER_ENV = "COUPLER_SEARCH_WORKER"
#: the settings the sweeper gives each trial's job (the command line's are replaced)
JOB_KEYS = ("search.trial", "search.storage", "search.study_name", "search.metric")


def run_search(config, launcher, arguments: list[str]) -> None:
    try:
        _search(config, launcher, arguments)
    except CouplerError as exc:  # Hydra would print a traceback
        print(f"coupler: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_status) from None


def _search(config, launcher, arguments: list[str]) -> None:
    from coupler_optuna import record

    plan = _plan(config, arguments)
    if os.environ.get(WORKER_ENV):
        _work(plan, launcher)
        return
    if plan.full and record.is_current(plan.study, plan.sweep_dir):
        _say_done(plan)
        if plan.node["refit"] and not record.refit_done(plan.sweep_dir):
            import optuna

            if plan.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                _refit(plan, launcher, plan.study.best_trial)
            else:
                print("search: no trial completed; nothing to refit.")
        return
    workers = _start_workers(plan, arguments) if plan.node["n_jobs"] > 1 else []
    _work(plan, launcher)
    _wait_for(workers)
    best = record.report(plan.study, plan.sweep_dir, plan.metric, partial(_replay, plan))
    if best is not None and plan.node["refit"]:
        _refit(plan, launcher, best)


def _say_done(plan) -> None:
    """A rerun of a study that already holds its trials and its record: said, and nothing is run or rewritten."""
    from coupler_optuna.record import BEST_JSON, TRIALS

    print(f"search: study {plan.study.study_name!r} already holds its {plan.node['n_trials']} trial(s) "
          f"(search.n_trials={plan.node['n_trials']}): nothing to run. Its record: {plan.sweep_dir / TRIALS}, "
          f"{plan.sweep_dir / BEST_JSON}; raise search.n_trials to run more.")


class _Plan:
    """What every trial shares: the study, the space, the fixed overrides, where the record goes."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _plan(config, arguments: list[str]) -> _Plan:
    import optuna
    from omegaconf import OmegaConf

    from coupler_optuna import space as spaces
    from coupler_optuna.study import check_storage, fail_abandoned, make_pruner, make_sampler, open_study, storage_url

    node = OmegaConf.to_container(config.search, resolve=True) if OmegaConf.select(config, "search") else None
    if not node:
        raise CouplerError("hydra/sweeper=coupler_optuna runs a search: choose one with search=NAME "
                           "(coupler train -m search=logistic_regression).")
    from coupler.schema import defaults
    from coupler_optuna.plugin import SearchSettings

    node = {**defaults(SearchSettings), **node}  # a search file gives what it changes
    _refuse_sweeps(arguments)
    space = spaces.parse(node.get("space"))
    fixed = [a for a in arguments if a.split("=", 1)[0].lstrip("+") not in JOB_KEYS]
    _check_space(space, fixed, config)
    sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    metric, maximize = _metric(config, node)
    url = storage_url(node.get("storage"), sweep_dir)
    name = node.get("study_name") or OmegaConf.select(config, "hydra.runtime.choices.search") or "coupler"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = space.grid() if node["sampler"] == "grid" else None
    seed = node["seed"] if node.get("seed") is not None else int(config.seed)
    check_storage(url, node.get("storage"))
    with _opening(url), _locked(url, sweep_dir):
        _refuse_other_study(sweep_dir, name)
        study = open_study(url, name, make_sampler(node["sampler"], seed, grid), make_pruner(node["pruner"]),
                           "maximize" if maximize else "minimize")
        if study.direction != (optuna.study.StudyDirection.MAXIMIZE if maximize else
                               optuna.study.StudyDirection.MINIMIZE):
            raise CouplerError(f"search.study_name={name}: the study in {url} optimizes the other way; start the "
                               f"new one in another hydra.sweep.dir (with another search.study_name when "
                               f"search.storage is shared).")
        _refuse_other_experiment(study, fixed, metric, url)
        abandoned = fail_abandoned(study)
        full = _full(study, node)
        # a continued study, or another worker, must not draw the same values again: its own stream
        already = len(study.get_trials(deepcopy=False))
        if already or os.environ.get(WORKER_ENV):
            worker = 7919 * _worker_index()
            study.sampler = make_sampler(node["sampler"], seed + already + worker, grid)
        _record_study(sweep_dir, name, url)
    if abandoned:
        log.warning("study %r: trial(s) %s were left running by a worker that is gone; marked failed, run again",
                    name, abandoned)
    if not full:
        log.info("study %r in %s: %s of validation %s, %d trials; rerun the same command to continue it", name,
                 url, "maximize" if maximize else "minimize", metric, node["n_trials"])
    # a trial measures validation only: the test rows stay unread (split.measure_test=false); the sweep directory
    # is given to each job, so that a launcher running it in another process needs no resolver of this one
    job_keys = [f"++search.storage={url}", f"++search.study_name={name}", f"++search.metric={metric}",
                "++split.measure_test=false", f"hydra.sweep.dir={sweep_dir}"]
    return _Plan(node=node, space=space, fixed=fixed, sweep_dir=sweep_dir, metric=metric, url=url, study=study,
                 job_keys=job_keys, config=config, full=full)


def _full(study, node: dict) -> bool:
    """Whether the study holds its ``n_trials`` (or, on a grid, every combination) before this command runs one."""
    from coupler_optuna.study import counted

    return counted(study) >= node["n_trials"] or (node["sampler"] == "grid" and _grid_done(study))


#: the study a sweep directory holds (its trials' directories are SWEEP_DIR/NUMBER): written by its first search
SWEEP_STUDY = "search.json"


def _studies_in(sweep_dir: Path) -> list[str]:
    """The study (or, in a sweep directory from before ``search.json``, the studies of its own journal) whose
    trials' directories this sweep directory holds."""
    import json

    import optuna

    from coupler_optuna.study import DEFAULT_FILE, _is_journal, open_storage

    marker = sweep_dir / SWEEP_STUDY
    if marker.is_file():
        try:
            return [str(json.loads(marker.read_text())["study_name"])]
        except (ValueError, KeyError, TypeError):
            raise CouplerError(f"{marker} is not the record of a study (a JSON object with study_name); choose "
                               f"another hydra.sweep.dir.") from None
    journal = sweep_dir / DEFAULT_FILE
    if journal.is_file() and journal.stat().st_size and _is_journal(journal):
        return optuna.get_all_study_names(open_storage(str(journal)))
    return []


def _refuse_other_study(sweep_dir: Path, name: str) -> None:
    """A new study numbers its trials from 0 again: in a sweep directory that holds another study's trials (and its
    record) it would fail every trial and overwrite that record; refused before anything is written."""
    existing = _studies_in(sweep_dir)
    if existing and name not in existing:
        raise CouplerError(f"search.study_name={name}: hydra.sweep.dir={sweep_dir} already holds study "
                           f"{existing[0]!r}; continue it with search.study_name={existing[0]}, or choose another "
                           f"hydra.sweep.dir for a new study.")


#: the study's user attribute that holds what its first command fixed: its overrides (but the ``search`` ones) and
#: the metric; a later command continues the study only when they are the same
EXPERIMENT = "experiment"


def _refuse_other_experiment(study, fixed: list[str], metric: str, url: str) -> None:
    """The default sweep directory is one per study name, so another command with the same search (other data,
    another seed) would find this study: it is refused, in one line naming what differs, before any trial. A
    study's ``search.*`` settings (``n_trials``, ``n_jobs``, ``refit``, ...) may change between commands."""
    experiment = {"overrides": sorted(o for o in fixed if not o.split("=", 1)[0].lstrip("+~").startswith("search")),
                  "metric": metric}
    recorded = study.user_attrs.get(EXPERIMENT)
    if recorded is None:
        if not study.get_trials(deepcopy=False):  # a study from before the attribute: not checked
            study.set_user_attr(EXPERIMENT, experiment)
        return
    if recorded == experiment:
        return
    before, now = set(recorded.get("overrides", [])), set(experiment["overrides"])
    differences = [f"{o} (not in its first command)" for o in sorted(now - before)]
    differences += [f"no {o} (its first command had it)" for o in sorted(before - now)]
    if recorded.get("metric") != metric:
        differences.append(f"validation {metric}, where it optimizes {recorded.get('metric')}")
    raise CouplerError(f"study {study.study_name!r} in {url} was started by another command: this one gives "
                       f"{'; '.join(differences)}. Rerun its own command to continue it, or start a new study with "
                       f"search.study_name=NEW (or hydra.sweep.dir=NEW).")


def _record_study(sweep_dir: Path, name: str, url: str) -> None:
    import json

    from coupler.run_directory import atomic_write_text

    if os.environ.get(WORKER_ENV) or (sweep_dir / SWEEP_STUDY).exists():
        return
    atomic_write_text(sweep_dir / SWEEP_STUDY, json.dumps({"study_name": name, "storage": url}, indent=2) + "\n")


@contextlib.contextmanager
def _opening(url: str):
    """The study's storage opened, locked and read: a file system's or a storage's error as one line."""
    import json

    import optuna

    try:
        yield
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, optuna.exceptions.StorageInternalError) as exc:
        raise CouplerError(f"search.storage={url}: cannot open the study's storage ({type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0]}). Check it, or leave search.storage unset for "
                           f"the sweep directory's own journal.") from None


def _refuse_sweeps(arguments: list[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(arguments):
        if override.is_sweep_override():
            raise CouplerError(f"{override.input_line}: a search runs the trials its sampler chooses; put the "
                               f"values in search.space ({override.get_key_element()}: {{choices: [...]}}) instead "
                               f"of sweeping them on the command line.")


def _check_space(space, fixed: list[str], config) -> None:
    """Every key, option and bound the space can give, checked as a command line is, before any trial."""
    from coupler.config import PRIMARY, check_overrides
    from coupler.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    # the user's --config-dir: Hydra lists it among the config sources, from the command line
    extra = tuple(str(source.path) for source in config.hydra.runtime.config_sources
                  if source.provider == "command-line" and source.schema == "file")
    for overrides in space.extremes():
        try:
            check_overrides([*space.fixed, *fixed, *overrides], manager, extra_dirs=extra,
                            own_primary=config.hydra.job.config_name == PRIMARY)
        except CouplerError as exc:
            raise CouplerError(f"search.space gives {' '.join(overrides)}: {exc}") from None


def _metric(config, node: dict) -> tuple[str, bool]:
    """The validation metric the study optimizes and whether greater is better: ``search.metric``, else the runs'
    primary metric as the multirun summary ranks by it (``coupler.sweep_summary.primary_metric``: a run's first
    measured metric): the first of ``metrics=[...]``, else the task's first default that is installed."""
    from omegaconf import OmegaConf

    from coupler.plugin_manager import get_plugin_manager

    registry = get_plugin_manager().registry
    metric = node.get("metric")
    if metric is None:
        task = str(config.task)
        if task == "auto":  # the data says (the run would read it the same way)
            from coupler.dataset import infer_task

            data = OmegaConf.to_container(config.data, resolve=True)
            task = infer_task(registry.get("data", data["name"]).build("data", data).y, "auto")
        metric = _first_metric(config, task, registry)
    built = registry.get("metric", metric).build(f"search.metric={metric}", {"name": metric})
    return metric, bool(getattr(built, "greater_is_better", True))


def _first_metric(config, task: str, registry) -> str:
    """The metric a run measures first (``coupler.evaluation.select_metrics``'s order): the first of
    ``metrics=[...]``, else the first of the task's defaults whose plugin is installed."""
    from omegaconf import OmegaConf

    from coupler.builtin.metrics import DEFAULTS

    nodes = OmegaConf.to_container(config.metrics, resolve=True) if OmegaConf.select(config, "metrics") else None
    if nodes:
        key, node = next(iter(nodes.items()))
        return str((node or {}).get("name", key))
    return next((name for name in DEFAULTS[task] if registry.provider("metric", name)), DEFAULTS[task][0])


@contextlib.contextmanager
def _locked(url: str, sweep_dir: Path):
    """Hold the lock beside a file storage (journal file or SQLite database); a server database: no lock."""
    import fcntl

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):] + ".search-lock")
    elif "://" not in url:
        path = Path(url + ".search-lock")  # not .lock: the journal takes that name for its own lock
    else:
        yield
        return
    try:
        handle = open(path, "a")
    except OSError as exc:
        raise CouplerError(f"search.storage={url}: cannot create the lock file {path} beside it "
                           f"({exc.strerror or exc}); the storage's directory must be writable.") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ask(plan):
    """The next trial, or None when the study holds ``n_trials`` (counted under the lock: no overshoot)."""
    import optuna

    from coupler_optuna.study import worker_id

    with _locked(plan.url, plan.sweep_dir):
        if _full(plan.study, plan.node):
            return None
        trial = plan.study.ask()
        trial.set_user_attr("worker", worker_id())
    try:
        overrides = plan.space.suggest(trial)[len(plan.space.fixed):]
    except BaseException as exc:
        plan.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if isinstance(exc, ValueError):  # Optuna: a dimension's kind or choices differ from the study's
            raise CouplerError(f"search.space does not fit study {plan.study.study_name!r} in {plan.url} "
                               f"({exc}); a study keeps its space: start a new study in a new hydra.sweep.dir "
                               f"(with search.study_name=NEW when search.storage is shared).") from None
        raise
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("fixed", [*plan.space.fixed, *plan.fixed])
    trial.set_user_attr("directory", str(plan.sweep_dir / str(trial.number)))
    return trial, overrides


def _grid_done(study) -> bool:
    sampler = study.sampler
    return hasattr(sampler, "is_exhausted") and sampler.is_exhausted(study)


def _work(plan, launcher) -> None:
    while True:
        asked = _ask(plan)
        if asked is None:
            return
        trial, overrides = asked
        # the space's fixed keys, then the command line's (which win), then the trial's own values
        job = [*plan.space.fixed, *plan.fixed, *overrides, f"++search.trial={trial.number}", *plan.job_keys]
        (result,) = launcher.launch([job], initial_job_idx=trial.number)
        _tell(plan, trial, result)


def _tell(plan, trial, result) -> None:
    import optuna
    from hydra.core.utils import JobStatus

    state, value = optuna.trial.TrialState.FAIL, None
    if result.status == JobStatus.COMPLETED and isinstance(result.return_value, dict):
        value = _score(plan, result.return_value, Path(trial.user_attrs["directory"]))
        state = optuna.trial.TrialState.COMPLETE if value is not None else state
    elif _pruned(plan, trial):
        state = optuna.trial.TrialState.PRUNED
    try:
        plan.study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state,
                        skip_if_finished=True)
    except RuntimeError:  # GridSampler calls study.stop() on its last grid point, outside optimize(): told anyway
        if plan.node["sampler"] != "grid":
            raise


def _pruned(plan, trial) -> bool:
    """Whether the trial's job (in any process) recorded that the pruner stopped it."""
    for frozen in plan.study.get_trials(deepcopy=False):
        if frozen.number == trial.number:
            return "pruned_after_epoch" in frozen.user_attrs
    return False


def _score(plan, results: dict, run_dir: Path) -> float | None:
    """The trial's validation score: the CV mean when the run cross-validated, else ``results["val"]``."""
    import json

    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        cv = (json.loads(metrics_file.read_text()).get("cv") or {}).get(plan.metric)
        if isinstance(cv, dict) and cv.get("mean") is not None:
            return float(cv["mean"])
    value = (results.get("val") or {}).get(plan.metric)
    if value is None:
        log.warning("trial in %s measured no validation %s (split.val=0, or a metric the model cannot give): "
                    "recorded as failed", run_dir, plan.metric)
        return None
    return float(value)


def _worker_index() -> int:
    """0 in the command's own process, 1 to ``n_jobs - 1`` in the workers it starts (each its sampler's stream)."""
    value = os.environ.get(WORKER_ENV, "0")
    return int(value) if value.isdigit() else 0


def _start_workers(plan, arguments: list[str]) -> list:
    """``search.n_jobs - 1`` more processes of this command on the same study and sweep directory."""
    # the worker's jobs record their outcomes for this process's summary; the worker writes none of its own
    command = [sys.executable, "-m", "coupler.train_app", "-m", *arguments, f"hydra.sweep.dir={plan.sweep_dir}",
               f"search.storage={plan.url}", f"search.study_name={plan.study.study_name}",
               "~hydra.callbacks.sweep_outcomes"]
    return [subprocess.Popen(command, env={**os.environ, WORKER_ENV: str(index)}, stdout=subprocess.DEVNULL)
            for index in range(1, plan.node["n_jobs"])]


def _wait_for(workers: list) -> None:
    """Each worker's end; one that failed (its own error went to stderr) is said: the study went on without it,
    and a trial it left running is run again by the next command."""
    for index, worker in enumerate(workers, start=1):
        status = worker.wait()
        if status != 0:
            log.error("search worker %d (pid %d) exited with status %d (its error is above); the study went on "
                      "without it", index, worker.pid, status)


def _replay(plan, trial) -> list[str]:
    """The overrides that train ``trial``'s configuration again (``best.yaml``, the refit): the space's fixed keys,
    the command line's but its ``search`` ones, then the trial's values rebuilt from its parameters
    (``trial.params``) by the space, never its stored overrides; each key once (the last, as Hydra applies them),
    no ``hydra.*`` key."""
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():  # a continued study's trial may lie outside this command's ranges: its value
            warnings.simplefilter("ignore", UserWarning)  # is what it ran with, and what best.yaml replays
            searched = plan.space.suggest(optuna.trial.FixedTrial(trial.params))[len(plan.space.fixed):]
    except ValueError as exc:  # a parameter the space has and the trial lacks: the study's space was another
        raise CouplerError(f"trial {trial.number} of study {plan.study.study_name!r} has parameters {trial.params} "
                           f"that do not fit search.space ({exc}); a study keeps its space.") from None
    last: dict[str, str] = {}
    for override in [*plan.space.fixed, *plan.fixed, *searched]:
        key = override.split("=", 1)[0].lstrip("+~")
        if not key.startswith(("search", "hydra.", "hydra/")):
            last.pop(key, None)
            last[key] = override
    return list(last.values())


def _refit(plan, launcher, best) -> None:
    """The best configuration trained on train+val (``split.val=0``) and tested once, in ``SWEEP_DIR/refit``; its
    test metrics printed and added to ``best.json``."""
    from coupler_optuna.record import REFIT, print_test, record_refit

    job = [*_replay(plan, best), "split.val=0", f"hydra.sweep.dir={plan.sweep_dir}",
           f"hydra.sweep.subdir={REFIT}"]
    (result,) = launcher.launch([job], initial_job_idx=plan.node["n_trials"] + 1)
    if result.status.name == "COMPLETED" and isinstance(result.return_value, dict):
        test = result.return_value.get("test") or {}
        print_test("refit on train+val", plan.sweep_dir / REFIT, test)
        record_refit(plan.sweep_dir, test)
