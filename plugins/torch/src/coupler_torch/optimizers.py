"""Optimizers and learning-rate schedulers for the torch engine.

The engine's contract for a component of the ``optimizer`` kind: its factory, called with the ``optimizer``
config node's keys, returns a callable ``make(parameters) -> torch.optim.Optimizer``. For the ``scheduler``
kind: a callable ``make(optimizer, epochs=..., steps_per_epoch=...)`` returning ``None`` (constant rate) or
Lightning's scheduler dict ``{"scheduler": ..., "interval": "epoch" | "step", "monitor": ...}``.

Factories check their values when built, before any data is read; torch is imported only when ``make`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from coupler.errors import ConfigError


def _number(key: str, value, low: float = 0.0, *, above: bool = False, high: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > low if above else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if above else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(key, value, f"a number {bound}")
    return float(value)


def _betas(key: str, value) -> tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ConfigError(key, value, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    return tuple(_number(key, v, 0.0, high=0.999999) for v in value)


def _fused(value) -> bool | str:
    if value not in ("auto", True, False):
        raise ConfigError("optimizer.fused", value,
                          "auto (torch's fused kernel where it supports the parameters), true or false")
    return value


#: the devices torch's fused optimizer kernels run on
FUSED_DEVICES = ("cpu", "cuda")


class OptimizerFactory:
    """``make(parameters)`` for one ``torch.optim`` class; the checked keyword arguments are kept in ``kwargs``.

    ``fused="auto"`` asks torch for its fused kernel (one kernel updates every parameter: Adam's step is about
    4x faster on a CPU than torch's default per-tensor loop) when every parameter is a floating-point tensor
    on a CPU or CUDA device, and for torch's default otherwise; ``True`` / ``False`` force it on / off.
    """

    def __init__(self, name: str, cls_name: str, kwargs: dict, fused: bool | str | None = None):
        self.name, self.cls_name, self.kwargs, self.fused = name, cls_name, kwargs, fused

    def __call__(self, parameters):
        import torch

        kwargs = dict(self.kwargs)
        if self.fused == "auto":
            parameters = list(parameters)
            if parameters and all(p.is_floating_point() and p.device.type in FUSED_DEVICES for p in parameters):
                kwargs["fused"] = True
        elif self.fused is not None:
            kwargs["fused"] = self.fused
        return getattr(torch.optim, self.cls_name)(parameters, **kwargs)

    def unfused(self) -> OptimizerFactory:
        """This factory with ``fused="auto"`` resolved to torch's default kernel (for mixed-precision clipping);
        an explicit ``fused=True`` stays, for the engine to refuse by name."""
        return OptimizerFactory(self.name, self.cls_name, self.kwargs, None) if self.fused == "auto" else self

    def __repr__(self) -> str:
        return f"{self.cls_name}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


def sgd(lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
        fused: bool | str = "auto"):
    key = "optimizer"
    kwargs = {"lr": _number(f"{key}.lr", lr, above=True), "momentum": _number(f"{key}.momentum", momentum),
              "weight_decay": _number(f"{key}.weight_decay", weight_decay)}
    if not isinstance(nesterov, bool):
        raise ConfigError(f"{key}.nesterov", nesterov, "true or false")
    if nesterov and kwargs["momentum"] == 0:
        raise ConfigError(f"{key}.nesterov", nesterov, "false when optimizer.momentum=0 (Nesterov needs momentum)")
    return OptimizerFactory("sgd", "SGD", {**kwargs, "nesterov": nesterov}, _fused(fused))


def adam(lr: float = 0.001, betas=(0.9, 0.999), weight_decay: float = 0.0, fused: bool | str = "auto"):
    return OptimizerFactory("adam", "Adam", {"lr": _number("optimizer.lr", lr, above=True),
                                             "betas": _betas("optimizer.betas", betas),
                                             "weight_decay": _number("optimizer.weight_decay", weight_decay)},
                            _fused(fused))


def adamw(lr: float = 0.001, betas=(0.9, 0.999), weight_decay: float = 0.01, fused: bool | str = "auto"):
    return OptimizerFactory("adamw", "AdamW", {"lr": _number("optimizer.lr", lr, above=True),
                                               "betas": _betas("optimizer.betas", betas),
                                               "weight_decay": _number("optimizer.weight_decay", weight_decay)},
                            _fused(fused))


def rmsprop(lr: float = 0.001, alpha: float = 0.99, momentum: float = 0.0, weight_decay: float = 0.0):
    return OptimizerFactory("rmsprop", "RMSprop", {"lr": _number("optimizer.lr", lr, above=True),
                                                   "alpha": _number("optimizer.alpha", alpha, high=1.0),
                                                   "momentum": _number("optimizer.momentum", momentum),
                                                   "weight_decay": _number("optimizer.weight_decay", weight_decay)})


OPTIMIZERS: dict[str, tuple[Callable, str]] = {
    "sgd": (sgd, "stochastic gradient descent (momentum, nesterov)"),
    "adam": (adam, "Adam"),
    "adamw": (adamw, "AdamW: Adam with decoupled weight decay"),
    "rmsprop": (rmsprop, "RMSprop"),
}


# --- schedulers -------------------------------------------------------------------------------------------


def cosine(min_lr: float = 0.0):
    min_lr = _number("scheduler.min_lr", min_lr)

    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=min_lr),
                "interval": "epoch"}

    return make


def step(step_size: int = 30, gamma: float = 0.1):
    if not isinstance(step_size, int) or isinstance(step_size, bool) or step_size < 1:
        raise ConfigError("scheduler.step_size", step_size, "a whole number of epochs, at least 1")
    gamma = _number("scheduler.gamma", gamma, above=True, high=1.0)

    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma),
                "interval": "epoch"}

    return make


def onecycle(max_lr: float = 0.01, pct_start: float = 0.3):
    max_lr = _number("scheduler.max_lr", max_lr, above=True)
    pct_start = _number("scheduler.pct_start", pct_start, above=True, high=1.0)

    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, epochs=max(epochs, 1), steps_per_epoch=max(steps_per_epoch, 1),
            pct_start=pct_start), "interval": "step"}

    return make


def plateau(monitor: str = "val_loss", mode: str = "min", factor: float = 0.1, patience: int = 5, min_lr: float = 0.0):
    if mode not in ("min", "max"):
        raise ConfigError("scheduler.mode", mode, "min or max")
    factor = _number("scheduler.factor", factor, above=True, high=0.999999)
    if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
        raise ConfigError("scheduler.patience", patience, "a whole number of epochs, at least 0")
    min_lr = _number("scheduler.min_lr", min_lr)

    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr),
            "interval": "epoch", "monitor": monitor}

    return make


def none():
    def make(optimizer, epochs: int, steps_per_epoch: int):
        return None

    return make


SCHEDULERS: dict[str, tuple[Callable, str]] = {
    "cosine": (cosine, "cosine annealing over trainer.max_epochs"),
    "step": (step, "multiply the learning rate by gamma every step_size epochs"),
    "onecycle": (onecycle, "one-cycle policy, stepped every batch"),
    "plateau": (plateau, "reduce the learning rate when a metric stops improving"),
    "none": (none, "a constant learning rate"),
}


# --- a run's optimizer and scheduler ----------------------------------------------------------------------


def for_run(run, model) -> tuple[Callable, Callable | None]:
    """``(make_optimizer, make_scheduler or None)`` for a run of ``model``, from its ``optimizer`` / ``scheduler``
    nodes in ``run.config`` and the registry (``run.registry``). The model's ``default_optimizer`` /
    ``default_scheduler`` (config nodes) fill in what the config leaves out, and are written into ``run.config``,
    so the run's ``config.yaml`` records what trained it."""
    config, model_name = run.config, (run.config.get("model") or {}).get("name", type(model).__name__)
    made = {}
    for kind in ("optimizer", "scheduler"):
        node, default = config.get(kind) or {}, getattr(model, f"default_{kind}", None) or {}
        if not node.get("name"):  # nothing chosen, or only keys set (optimizer.lr=0.01): on the model's default
            if node and not default:
                raise ConfigError(kind, node, f"a choice before its keys: {kind}=NAME {kind}.KEY=VALUE")
            if node and any(k not in default for k in node):
                raise ConfigError(kind, node, f"keys of the default {kind} {default['name']!r} "
                                  f"({', '.join(k for k in default if k != 'name')}), or {kind}=NAME first")
            config[kind] = {**default, **node} if default else None
        node = config.get(kind)
        made[kind] = run.registry.get(kind, node["name"]).build(kind, node) if node else None
    if made["optimizer"] is None:
        raise ConfigError("optimizer", None, f"an optimizer for model {model_name!r}: optimizer=NAME (see coupler plugins)")
    return made["optimizer"], made["scheduler"]
