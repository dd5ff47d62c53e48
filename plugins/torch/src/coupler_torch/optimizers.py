"""Optimizers and learning-rate schedulers for the torch engine, each with its schema.

The engine's contract for a component of the ``optimizer`` kind: its factory, called with the ``optimizer``
config node's keys, returns a callable ``make(parameters) -> torch.optim.Optimizer``. For the ``scheduler``
kind: a callable ``make(optimizer, epochs=..., steps_per_epoch=...)`` returning ``None`` (constant rate) or
Lightning's scheduler dict ``{"scheduler": ..., "interval": "epoch" | "step", "monitor": ...}``.

Each component's parameters are declared once, in its schema (``coupler.schema``): the defaults, the help and the
ranges and choices from torch's documentation. Coupler checks a node against it on the command line, before any
data is read, and again when the factory is called with every field; the factories keep only the checks a schema
cannot express (the two entries of ``betas``, ``nesterov`` needing momentum). Torch is imported only when
``make`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from coupler.errors import ConfigError
from coupler.schema import param

# --- what the optimizers share ------------------------------------------------------------------------------

_LR = "learning rate"
_WEIGHT_DECAY = "L2 penalty added to the gradient (0: none)"
_FUSED = ("torch's fused kernel (one kernel updates every parameter): auto where it supports the parameters "
          "(floats on a CPU or CUDA device)")
#: ``fused``: a word or a switch
AutoOrSwitch = Annotated[bool | str, "auto, true or false"]
_BETAS = "Adam's decay rates of the running averages of the gradient and of its square, two numbers in [0, 1)"
_FUSED_CHOICES = ("auto", True, False)


@dataclass
class SGDSchema:
    """``optimizer=sgd``: ``torch.optim.SGD``."""

    lr: float = param(0.01, help=_LR, gt=0)
    momentum: float = param(0.9, help="momentum factor (0: plain gradient descent)", ge=0, lt=1)
    nesterov: bool = param(False, help="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = param(0.0, help=_WEIGHT_DECAY, ge=0)
    fused: AutoOrSwitch = param("auto", help=_FUSED, choices=_FUSED_CHOICES)


@dataclass
class AdamSchema:
    """``optimizer=adam``: ``torch.optim.Adam``."""

    lr: float = param(0.001, help=_LR, gt=0)
    betas: list[float] = param(default_factory=lambda: [0.9, 0.999], help=_BETAS)
    weight_decay: float = param(0.0, help=_WEIGHT_DECAY, ge=0)
    fused: AutoOrSwitch = param("auto", help=_FUSED, choices=_FUSED_CHOICES)


@dataclass
class AdamWSchema(AdamSchema):
    """``optimizer=adamw``: ``torch.optim.AdamW``, Adam with decoupled weight decay (Adam's keys, in Adam's order)."""

    weight_decay: float = param(0.01, help="decoupled weight decay: each step shrinks the weights by lr * this",
                                ge=0)


@dataclass
class RMSpropSchema:
    """``optimizer=rmsprop``: ``torch.optim.RMSprop``."""

    lr: float = param(0.001, help=_LR, gt=0)
    alpha: float = param(0.99, help="smoothing constant of the running average of the squared gradient",
                         ge=0, le=1)
    momentum: float = param(0.0, help="momentum factor (0: none)", ge=0, lt=1)
    weight_decay: float = param(0.0, help=_WEIGHT_DECAY, ge=0)


def _betas(betas: list[float]) -> tuple[float, float]:
    """Adam's two betas. The schema checks that they are numbers; how many, and each one's range, it cannot say."""
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError("optimizer.betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]")
    return float(betas[0]), float(betas[1])


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


def sgd(lr: float, momentum: float, nesterov: bool, weight_decay: float, fused: bool | str):
    if nesterov and momentum == 0:  # a rule between two fields: the schema checks each alone
        raise ConfigError("optimizer.nesterov", nesterov, "false when optimizer.momentum=0 (Nesterov needs momentum)")
    return OptimizerFactory("sgd", "SGD", {"lr": float(lr), "momentum": float(momentum),
                                           "weight_decay": float(weight_decay), "nesterov": nesterov}, fused)


def adam(lr: float, betas: list[float], weight_decay: float, fused: bool | str):
    return OptimizerFactory("adam", "Adam", {"lr": float(lr), "betas": _betas(betas),
                                             "weight_decay": float(weight_decay)}, fused)


def adamw(lr: float, betas: list[float], weight_decay: float, fused: bool | str):
    return OptimizerFactory("adamw", "AdamW", {"lr": float(lr), "betas": _betas(betas),
                                               "weight_decay": float(weight_decay)}, fused)


def rmsprop(lr: float, alpha: float, momentum: float, weight_decay: float):
    return OptimizerFactory("rmsprop", "RMSprop", {"lr": float(lr), "alpha": float(alpha),
                                                   "momentum": float(momentum), "weight_decay": float(weight_decay)})


#: name: (factory, schema, description)
OPTIMIZERS: dict[str, tuple[Callable, type, str]] = {
    "sgd": (sgd, SGDSchema, "stochastic gradient descent (momentum, nesterov)"),
    "adam": (adam, AdamSchema, "Adam"),
    "adamw": (adamw, AdamWSchema, "AdamW: Adam with decoupled weight decay"),
    "rmsprop": (rmsprop, RMSpropSchema, "RMSprop"),
}


# --- schedulers -------------------------------------------------------------------------------------------

@dataclass
class CosineSchema:
    """``scheduler=cosine``: cosine annealing from the optimizer's lr to ``min_lr`` over trainer.max_epochs,
    stepped each epoch (``torch.optim.lr_scheduler.CosineAnnealingLR``)."""

    min_lr: float = param(0.0, help="the learning rate the last epoch ends at (CosineAnnealingLR's eta_min)", ge=0)


@dataclass
class StepSchema:
    """``scheduler=step``: multiply the lr by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``)."""

    step_size: int = param(30, help="epochs between two decays", ge=1)
    gamma: float = param(0.1, help="what the lr is multiplied by at each decay", gt=0, le=1)


@dataclass
class OneCycleSchema:
    """``scheduler=onecycle``: one cycle (warm up to ``max_lr``, then anneal) over all the training steps, stepped
    each batch (``torch.optim.lr_scheduler.OneCycleLR``)."""

    max_lr: float = param(0.01, help="the highest learning rate, reached at the end of the warm-up", gt=0)
    pct_start: float = param(0.3, help="the fraction of the steps spent warming up", gt=0, le=1)


@dataclass
class PlateauSchema:
    """``scheduler=plateau``: multiply the lr by ``factor`` when ``monitor`` has not improved for ``patience`` epochs
    (``torch.optim.lr_scheduler.ReduceLROnPlateau``)."""

    monitor: str = param("val_loss", help="the epoch metric watched: val_loss, train_loss, val_accuracy "
                                          "(classification), val_rmse (regression), or one the model reports")
    mode: str = param("min", help="whether the metric improves as it falls (min) or rises (max)",
                      choices=("min", "max"))
    factor: float = param(0.1, help="what the lr is multiplied by when the metric stalls", gt=0, lt=1)
    patience: int = param(5, help="epochs without improvement before the lr is lowered", ge=0)
    min_lr: float = param(0.0, help="the learning rate never goes below this", ge=0)


@dataclass
class NoSchedulerSchema:
    """``scheduler=none``: a constant learning rate; no parameters."""


def cosine(min_lr: float):
    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1),
                                                                         eta_min=float(min_lr)),
                "interval": "epoch"}

    return make


def step(step_size: int, gamma: float):
    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=float(gamma)),
                "interval": "epoch"}

    return make


def onecycle(max_lr: float, pct_start: float):
    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=float(max_lr), epochs=max(epochs, 1), steps_per_epoch=max(steps_per_epoch, 1),
            pct_start=float(pct_start)), "interval": "step"}

    return make


def plateau(monitor: str, mode: str, factor: float, patience: int, min_lr: float):
    def make(optimizer, epochs: int, steps_per_epoch: int):
        import torch

        return {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=float(factor), patience=patience, min_lr=float(min_lr)),
            "interval": "epoch", "monitor": monitor}

    return make


def none():
    def make(optimizer, epochs: int, steps_per_epoch: int):
        return None

    return make


#: name: (factory, schema, description)
SCHEDULERS: dict[str, tuple[Callable, type, str]] = {
    "cosine": (cosine, CosineSchema, "cosine annealing over trainer.max_epochs"),
    "step": (step, StepSchema, "multiply the learning rate by gamma every step_size epochs"),
    "onecycle": (onecycle, OneCycleSchema, "one-cycle policy, stepped every batch"),
    "plateau": (plateau, PlateauSchema, "reduce the learning rate when a metric stops improving"),
    "none": (none, NoSchedulerSchema, "a constant learning rate"),
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
