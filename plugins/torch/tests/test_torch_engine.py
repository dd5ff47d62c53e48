"""The torch engine through real runs of a small network: optimizers and schedulers from the registries,
early stopping and checkpoints, tensor batching, trainer settings, safetensors artifacts."""

from __future__ import annotations

import json
import logging
import types

import numpy as np
import pytest
import torch

from coupler import hookimpl
from coupler.config import compose
from coupler.errors import ConfigError, CouplerError
from coupler.finished_run import FinishedRun
from coupler.plugin_manager import PluginManager
from coupler.testing import train_run
from coupler_torch.engine import TensorBatches, TorchModel
from coupler_torch.optimizers import OPTIMIZERS


class MLP(TorchModel):
    """A two-layer perceptron: the smallest real model on the engine."""

    def __init__(self, task, seed, hidden: int = 32, batch_size: int = 32):
        super().__init__(task, seed, batch_size)
        self.hidden = hidden

    def architecture(self) -> dict:
        return {"hidden": self.hidden}

    def build_network(self, n_inputs, n_outputs):
        return torch.nn.Sequential(torch.nn.Linear(n_inputs, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                   torch.nn.Linear(self.hidden, n_outputs))


class SignDescent(torch.optim.Optimizer):
    """A third party's optimizer: steps by the sign of the gradient, and counts its steps."""

    steps = 0

    def __init__(self, params, lr=0.01):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        SignDescent.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.data.add_(torch.sign(p.grad), alpha=-group["lr"])
        return loss


class InterruptAtEpoch:
    """A callback that presses Ctrl-C at the end of epoch ``epoch``."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    @hookimpl
    def on_epoch_end(self, run, epoch, metrics):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class ThirdParty:
    @hookimpl
    def register_models(self, register):
        register("tiny_mlp", MLP)  # coupler-torch registers "mlp" itself

    @hookimpl
    def register_callbacks(self, register):
        register("interrupt", InterruptAtEpoch)

    @hookimpl
    def register_optimizers(self, register):
        register("sign_descent", lambda lr=0.01: (lambda params: SignDescent(params, lr=lr)))


@pytest.fixture(scope="module")
def manager():
    pm = PluginManager()
    pm.load_builtins()
    pm.load_entry_points()
    pm.load_object("third_party", ThirdParty())
    return pm


def run(manager, tmp_path, *overrides, name="run"):
    return train_run(tmp_path, "model=tiny_mlp", "trainer.max_epochs=5", *overrides, name=name, manager=manager)


def history(run_dir):
    import pandas as pd

    return pd.read_csv(run_dir / "history.csv")


# --- optimizers and schedulers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_builds_at_its_schemas_defaults_and_steps(manager, name):
    factory = manager.registry.get("optimizer", name).build("optimizer", {"name": name})
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = factory([weight])
    assert isinstance(optimizer, torch.optim.Optimizer)
    (weight ** 2).sum().backward()
    optimizer.step()
    assert not torch.equal(weight.detach(), torch.ones(3)), f"{name} did not move the weights"


def test_sgd_takes_momentum_and_nesterov_from_its_config(manager, tmp_path):
    config = compose(["model=tiny_mlp", "optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0.8"], manager)
    make = manager.registry.get("optimizer", "sgd").build("optimizer", config["optimizer"])
    optimizer = make([torch.nn.Parameter(torch.ones(1))])
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.8


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_auto_takes_torchs_fused_kernel_for_float_parameters_and_false_turns_it_off(manager, name):
    registration = manager.registry.get("optimizer", name)
    weight = torch.nn.Parameter(torch.ones(3))
    assert registration.build("optimizer", {"name": name})([weight]).defaults["fused"] is True
    assert not registration.build("optimizer", {"name": name, "fused": False})([weight]).defaults["fused"]
    # a parameter torch has no fused kernel for (here a float on the 'meta' device) gets torch's default
    meta = torch.nn.Parameter(torch.ones(3, device="meta"))
    assert not registration.build("optimizer", {"name": name})([meta]).defaults["fused"]


@pytest.mark.parametrize("choice, override, allowed", [
    ("optimizer=adam", "optimizer.lr=-1", "a number > 0 (learning rate)"),
    ("optimizer=adam", "optimizer.fused=maybe", "one of auto, true, false"),
    ("optimizer=sgd", "optimizer.momentum=1", "a number >= 0 and < 1"),
    ("optimizer=rmsprop", "optimizer.alpha=1.5", "a number >= 0 and <= 1"),
    ("scheduler=step", "scheduler.step_size=0", "a whole number >= 1"),
    ("scheduler=plateau", "scheduler.mode=up", "one of min, max"),
    ("scheduler=plateau", "scheduler.factor=1", "a number > 0 and < 1"),
    ("scheduler=onecycle", "scheduler.pct_start=0", "a number > 0 and <= 1"),
    ("callbacks=[checkpoint]", "callbacks.checkpoint.mode=up", "one of min, max"),
    ("callbacks=[checkpoint]", "callbacks.checkpoint.save_best=maybe", "true or false"),
    ("optimizer=adam", "optimizer.beta=[0.9,0.99]", "Did you mean 'betas'"),
])
def test_a_bad_optimizer_scheduler_or_callback_value_is_one_line_before_any_data_is_read(coupler_cli, tmp_path,
                                                                                         choice, override, allowed):
    """The schemas' ranges and choices, from torch's documentation, refuse the value before anything is read or
    built: the csv file does not exist, and the refusal names the component's key instead."""
    result = coupler_cli("train", "model=mlp", choice, override, "data=csv", "data.path=absent.csv", "data.target=y",
                         "hydra.run.dir=run")
    assert result.rc == 2 and len(result.error_lines) == 1 and "Traceback" not in result.err, result.err
    key = override.partition("=")[0]
    assert result.error_lines[0].startswith(f"coupler: error: {key}=") and " is not allowed: " in result.error_lines[0]
    assert allowed in result.error_lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("optimizer.nesterov=true", "Nesterov needs momentum"),
    ("optimizer.betas=[0.9]", r"optimizer.betas=\[0.9\] is not allowed: two numbers in \[0, 1\)"),
    ("optimizer.betas=[0.9,1.0]", r"optimizer.betas=\[0.9, 1.0\] is not allowed: two numbers in \[0, 1\)"),
])
def test_what_the_optimizer_schemas_cannot_express_is_refused_when_the_optimizer_is_built(manager, override, message):
    """nesterov needs momentum (two fields); betas holds two numbers, each in [0, 1) (a list's length and its
    entries' range): the factories check these when the run builds the optimizer."""
    optimizer = "sgd" if "nesterov" in override else "adam"
    extra = ["optimizer.momentum=0"] if "nesterov" in override else []
    config = compose(["model=tiny_mlp", f"optimizer={optimizer}", override, *extra], manager)
    with pytest.raises(ConfigError, match=message):
        manager.registry.get("optimizer", optimizer).build("optimizer", config["optimizer"])


def test_the_schemas_hold_the_defaults_runs_trained_with():
    """The keys and defaults of the deleted conf/optimizer/, conf/scheduler/ and conf/callbacks/ files: a user's run
    did not change; the engine's default optimizer and scheduler are the schemas'."""
    from coupler.schema import defaults
    from coupler_torch.callbacks import CALLBACKS
    from coupler_torch.engine import DEFAULT_OPTIMIZER, DEFAULT_SCHEDULER
    from coupler_torch.optimizers import SCHEDULERS

    fused = {"fused": "auto"}
    expected = {
        "sgd": {"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, **fused},
        "adam": {"lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.0, **fused},
        "adamw": {"lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.01, **fused},
        "rmsprop": {"lr": 0.001, "alpha": 0.99, "momentum": 0.0, "weight_decay": 0.0},
        "cosine": {"min_lr": 0.0}, "step": {"step_size": 30, "gamma": 0.1}, "none": {},
        "onecycle": {"max_lr": 0.01, "pct_start": 0.3},
        "plateau": {"monitor": "val_loss", "mode": "min", "factor": 0.1, "patience": 5, "min_lr": 0.0},
        "checkpoint": {"monitor": "val_loss", "mode": "min", "save_best": True, "save_last": True},
        "lr_monitor": {},
    }
    schemas = {name: entry[1] for table in (OPTIMIZERS, SCHEDULERS, CALLBACKS) for name, entry in table.items()}
    assert {name: defaults(schema) for name, schema in schemas.items()} == expected
    assert DEFAULT_OPTIMIZER == {"name": "adam", **expected["adam"]}
    assert DEFAULT_SCHEDULER == {"name": "cosine", **expected["cosine"]}


def test_the_readmes_table_of_options_shows_the_schemas_defaults():
    """The README's `optimizer=` / `scheduler=` table is written by hand: each row's `key: value` pairs are the
    schema's keys and defaults."""
    import re
    from pathlib import Path

    import yaml

    from coupler.schema import defaults
    from coupler_torch.optimizers import SCHEDULERS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(?:optimizer|scheduler)=(\w+)` \| (.*) \|$", readme, re.MULTILINE))
    assert set(rows) == set(OPTIMIZERS) | set(SCHEDULERS)
    for name, cell in rows.items():
        shown = {key: yaml.safe_load(value) for key, value in re.findall(r"`(\w+): ([^`]+)`", cell)}
        schema = (OPTIMIZERS.get(name) or SCHEDULERS[name])[1]
        assert shown == defaults(schema), f"README.md, {name}: {shown} != the schema's {defaults(schema)}"


def test_a_run_without_an_optimizer_gets_the_engine_default_and_records_it(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=iris", "trainer.max_epochs=2")
    saved = (run_dir / "config.yaml").read_text()
    assert "optimizer:\n  name: adam" in saved and "scheduler:\n  name: cosine" in saved


@pytest.mark.parametrize("scheduler, check", [
    ("cosine", lambda lr: lr[-1] < lr[0] / 5),
    ("step", lambda lr: lr[0] == lr[1] and lr[2] == pytest.approx(lr[0] * 0.5)),
    ("onecycle", lambda lr: max(lr) > lr[0] and lr[-1] < max(lr)),
    ("none", lambda lr: len(set(lr)) == 1),
])
def test_schedulers_shape_the_learning_rate_recorded_by_lr_monitor(manager, tmp_path, scheduler, check):
    extra = {"step": ["scheduler.step_size=2", "scheduler.gamma=0.5"], "onecycle": ["scheduler.max_lr=0.05"]}
    _, run_dir = run(manager, tmp_path, "data=iris", f"scheduler={scheduler}", *extra.get(scheduler, []),
                     "callbacks=[lr_monitor]", "trainer.max_epochs=6")
    lr = history(run_dir)["lr"].tolist()
    assert len(lr) == 6 and check(lr), lr


def test_plateau_lowers_the_rate_when_the_monitored_metric_stalls(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=iris", "scheduler=plateau", "scheduler.patience=0", "scheduler.factor=0.5",
                     "scheduler.monitor=train_loss", "scheduler.mode=max", "callbacks=[lr_monitor]", "trainer.max_epochs=4")
    lr = history(run_dir)["lr"].tolist()
    assert lr[-1] < lr[0], "train_loss falls, so in mode=max it stalls and the rate must drop"


def test_a_third_party_optimizer_registers_and_trains(manager, tmp_path):
    SignDescent.steps = 0
    results, run_dir = run(manager, tmp_path, "data=iris", "optimizer=sign_descent", "optimizer.lr=0.005",
                           "scheduler=none", "trainer.max_epochs=20")
    assert SignDescent.steps == 20 * 4  # 105 training rows in batches of 32
    assert results["test"]["accuracy"] >= 0.8


# --- epochs, early stopping, checkpoints --------------------------------------------------------------------


def test_each_epoch_reports_train_and_validation_metrics(manager, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="coupler"):
        _, run_dir = run(manager, tmp_path, "data=wine", "trainer.max_epochs=3", "train.log_every=60")
    frame = history(run_dir)
    assert list(frame.columns) == ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"]
    assert frame["epoch"].tolist() == [0, 1, 2] and (frame["seconds"] > 0).all()
    # without a terminal: a line for the first and the last epoch (counted to max_epochs), the rest rate-limited
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 3/3"]
    assert all("train_loss " in line and "val_accuracy " in line and "s/epoch)" in line for line in lines)


def test_early_stopping_stops_and_keeps_the_best_epoch(manager, tmp_path):
    results, run_dir = run(manager, tmp_path, "data=wine", "trainer.max_epochs=300", "scheduler=none", "optimizer=adam",
                           "optimizer.lr=0.05", "callbacks=[early_stopping]", "callbacks.early_stopping.patience=3")
    frame = history(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(frame) < 300
    best = manifest["best_epoch"]
    assert best == len(frame) - 1 - 3
    assert frame["val_loss"][best] == frame["val_loss"].min()
    # the kept weights are the best epoch's: the validation loss measured now is that epoch's
    assert results["val"]["log_loss"] == pytest.approx(frame["val_loss"][best], rel=1e-3, abs=1e-6)


def test_checkpoint_callback_keeps_best_and_last_loadable_with_weights_only(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=wine", "callbacks=[checkpoint]", "trainer.max_epochs=4")
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert "state_dict" in checkpoint and "optimizer_states" in checkpoint
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3
    assert not list((run_dir / "checkpoints").glob(".*")), "a temporary checkpoint file was left behind"


@pytest.mark.parametrize(("interval", "written"), [(0, [0, 1, 2, 3]), (3600, [0])])
def test_the_resume_checkpoint_is_written_after_the_first_epoch_then_once_per_interval(manager, tmp_path, monkeypatch,
                                                                                       interval, written):
    import lightning.pytorch as pl

    epochs, save = [], pl.Trainer.save_checkpoint

    def spy(trainer, path, *args, **kwargs):
        epochs.append(trainer.current_epoch)
        return save(trainer, path, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", spy)
    run(manager, tmp_path, "data=wine", "trainer.max_epochs=4", f"trainer.resume_interval={interval}")
    assert epochs == written


def test_without_the_checkpoint_callback_no_checkpoint_outlives_the_run(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=wine", "trainer.max_epochs=2")
    assert not (run_dir / "checkpoints").exists()


def test_ctrl_c_during_training_reaches_the_caller_as_keyboard_interrupt(manager, tmp_path):
    # Lightning turns it into sys.exit(1) and leaves SIGINT ignored; the engine gives both back
    import signal

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run(manager, tmp_path, "data=iris", "callbacks=[interrupt]", "trainer.resume_interval=0")
    assert signal.getsignal(signal.SIGINT) is handler, "Lightning's SIG_IGN was left in place"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0, "the checkpoint of epoch 0 stays, for a resume"


def test_a_resume_checkpoint_loads_as_plain_data_whatever_the_environment_says(tmp_path, monkeypatch):
    from coupler_torch.engine import load_checkpoint

    class Gadget:
        def __reduce__(self):
            return exec, (f"open({str(tmp_path / 'marker')!r}, 'w').write('ran')",)

    torch.save({"epoch": 0, "state_dict": {}, "gadget": Gadget()}, tmp_path / "last.ckpt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # makes torch.load(weights_only=None) unpickle
    with pytest.raises(CouplerError, match="last.ckpt holds a Python object that is not plain data"):
        load_checkpoint(tmp_path / "last.ckpt")
    assert not (tmp_path / "marker").exists()
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2)}}, tmp_path / "last.ckpt")
    assert load_checkpoint(tmp_path / "last.ckpt")["epoch"] == 3


@pytest.mark.parametrize("choice, key", [("callbacks=[checkpoint]", "callbacks.checkpoint.monitor"),
                                         ("scheduler=plateau", "scheduler.monitor")])
def test_a_monitor_the_engine_does_not_report_is_named_by_its_key(manager, tmp_path, choice, key):
    """Which metrics a run reports is known when its first epoch ends (the task's, the model's own): a monitor the
    schema cannot check is refused then, by its key, with the metrics there are."""
    with pytest.raises(ConfigError, match=f"{key}='val_auc' is not allowed: one of the epoch metrics: .*val_accuracy"):
        run(manager, tmp_path, "data=wine", choice, f"{key}=val_auc")


# --- data feeding ---------------------------------------------------------------------------------------------


def test_tensor_batches_cover_every_row_once_in_a_seeded_order_per_epoch():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    epoch = types.SimpleNamespace(value=0)
    batches = TensorBatches(X, y, 4, shuffle=True, seed=1, epoch=lambda: epoch.value)
    first = [b[1].tolist() for b in batches]
    assert len(batches) == 3 and [len(b) for b in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10))
    assert [b[1].tolist() for b in batches] == first, "the same epoch must give the same order"
    epoch.value = 1
    assert [b[1].tolist() for b in batches] != first, "another epoch must give another order"
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches), "rows and labels must stay paired"


# --- trainer settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("trainer.precision=8-bit", "trainer.precision='8-bit'.*bf16-mixed"),
    ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val"),
    ("trainer.progress_bar=sometimes", "trainer.progress_bar"),
    ("trainer.resume_interval=-1", "trainer.resume_interval=-1.*seconds"),
])
def test_a_bad_trainer_value_is_a_clear_error(manager, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(manager, tmp_path, "data=iris", override)


def test_clipping_under_mixed_precision_takes_the_unfused_kernel_and_refuses_a_forced_fused_one(manager, tmp_path):
    settings = ["data=iris", "trainer.max_epochs=1", "trainer.gradient_clip_val=0.5", "trainer.precision=bf16-mixed",
                "trainer.accelerator=cpu"]
    run(manager, tmp_path, *settings)  # fused: auto
    with pytest.raises(ConfigError, match="trainer.gradient_clip_val=0.5.*optimizer.fused=false"):
        run(manager, tmp_path, *settings, "optimizer=adam", "optimizer.fused=true", name="forced")


@pytest.mark.parametrize("precision, dtype", [("64-true", torch.float64), ("bf16-true", torch.bfloat16)])
def test_a_true_precision_trains_validates_and_reloads_in_its_own_dtype(manager, tmp_path, precision, dtype):
    # the weights are in `dtype`: validation and final measurement feed them inputs of that dtype, and the
    # reloaded network keeps it, so that evaluate reproduces the run's numbers
    results, run_dir = run(manager, tmp_path, "data=wine", "trainer.max_epochs=2", f"trainer.precision={precision}")
    finished = FinishedRun(run_dir, manager)
    assert next(finished.model.network.parameters()).dtype == dtype
    assert finished.evaluate() == results
    assert np.isfinite(history(run_dir)["val_loss"]).all()


def test_trainer_settings_reach_lightning(manager, tmp_path, monkeypatch):
    import lightning.pytorch as pl

    seen = {}
    original = pl.Trainer.__init__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "__init__", spy)
    run(manager, tmp_path, "data=iris", "trainer.max_epochs=2", "trainer.gradient_clip_val=0.5",
        "trainer.deterministic=true", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu")
    assert seen["gradient_clip_val"] == 0.5 and seen["deterministic"] is True
    assert seen["precision"] == "bf16-mixed" and seen["accelerator"] == "cpu" and seen["max_epochs"] == 2
    assert seen["enable_progress_bar"] is False, "no progress bar when stderr is not a terminal"


# --- tasks, artifacts ----------------------------------------------------------------------------------------


def test_regression_beats_the_mean_predictor(manager, tmp_path):
    results, _ = run(manager, tmp_path, "data=diabetes", "trainer.max_epochs=60", "optimizer=adam", "optimizer.lr=0.01")
    from sklearn.datasets import load_diabetes

    y = load_diabetes().target
    assert results["test"]["rmse"] < 0.9 * np.std(y)


def test_artifacts_are_safetensors_and_json_and_reproduce_the_run(manager, tmp_path):
    results, run_dir = run(manager, tmp_path, "data=wine")
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == ["network.json", "weights.safetensors"]
    network = json.loads((run_dir / "model" / "network.json").read_text())
    assert network["architecture"] == {"hidden": 32} and network["n_inputs"] == 13 and network["n_outputs"] == 3
    assert FinishedRun(run_dir, manager).evaluate() == results


def test_a_changed_architecture_is_refused_on_reload(manager, tmp_path):
    _, run_dir = run(manager, tmp_path, "data=iris", "trainer.max_epochs=1")
    model = MLP("multiclass", 0, hidden=8)
    with pytest.raises(CouplerError, match="config was changed"):
        model.load(run_dir / "model")


def test_seeded_runs_are_identical(manager, tmp_path):
    first, _ = run(manager, tmp_path, "data=wine", name="a")
    second, _ = run(manager, tmp_path, "data=wine", name="b")
    assert first == second


def test_an_optimizer_given_to_a_model_that_uses_none_is_refused_clearly(coupler_cli):
    pytest.importorskip("coupler_xgboost")
    result = coupler_cli("train", "model=xgboost", "optimizer=adam", "hydra.run.dir=run")
    assert result.rc == 2 and len(result.error_lines) == 1
    assert "model 'xgboost' does not use an optimizer" in result.error_lines[0]
    assert "remove optimizer=" in result.error_lines[0]


def test_the_torch_plugin_declares_its_kinds_hooks_and_trainer_group():
    from coupler.plugin_manager import get_plugin_manager
    from coupler_torch import hookspecs

    manager = get_plugin_manager()
    kinds = manager.registry.kinds
    assert (kinds["optimizer"].plugin, kinds["optimizer"].hook, kinds["scheduler"].hook) == \
        ("torch", "register_optimizers", "register_schedulers")
    assert manager.hook_owners["register_optimizers"] == "torch" == manager.registry.setting_groups["trainer"].plugin
    assert {"register_optimizers", "register_schedulers"} <= set(dir(hookspecs))
    assert manager.registry.setting_groups["trainer"].default == "default"
