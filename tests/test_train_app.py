"""``coupler-train``'s own pieces: how it reads Hydra's command line, the config nodes it generates for components
without a file, and how a process of a distributed job knows it is not the first."""

from __future__ import annotations

import pytest

from coupler.distributed import secondary_process
from coupler.registry import Component
from coupler.train_app import split_command_line


@pytest.mark.parametrize("args, flags, overrides", [
    (["model=knn", "seed=1"], {}, ["model=knn", "seed=1"]),
    (["-m", "model=knn,svm"], {"-m": None}, ["model=knn,svm"]),
    (["--cfg", "job", "model=knn"], {"--cfg": "job"}, ["model=knn"]),
    (["-c", "hydra", "--resolve"], {"-c": "hydra", "--resolve": None}, []),
    (["--info", "model=knn"], {"--info": None}, ["model=knn"]),  # --info's value is one of its choices, or none
    (["--info", "searchpath"], {"--info": "searchpath"}, []),
    (["-cp", "/abs/conf", "-cn", "exp", "seed=2"], {"-cp": "/abs/conf", "-cn": "exp"}, ["seed=2"]),
    (["--config-dir=/d", "~callbacks", "+model.params.C=0.5"], {"--config-dir": "/d"}, ["~callbacks", "+model.params.C=0.5"]),
    (["-sc", "query=bash"], {"-sc": "query=bash"}, []),
    (["seed=-1", "split.test=0.2"], {}, ["seed=-1", "split.test=0.2"]),
], ids=["overrides", "multirun", "cfg", "short-cfg", "info-alone", "info-value", "config-path-name", "config-dir",
        "completion", "negative-value"])
def test_the_command_line_splits_into_hydras_flags_and_the_overrides(args, flags, overrides):
    assert split_command_line(args) == (flags, overrides)


def build(task, seed, width: int = 32, rates=(0.1, 0.2), path=None, depth=2, when=object(), required=None, *, mode="a"):
    return None


def needs(task, seed, size, **rest):
    return None


def stored(component) -> dict:
    from omegaconf import OmegaConf

    from coupler.schema import hydra_node

    return OmegaConf.to_container(OmegaConf.structured(hydra_node(component.parameters, component.name)))


def test_a_component_without_a_schema_gets_its_factorys_parameters_as_its_node():
    # task and seed come from the run, a tuple becomes a list, an object default cannot live in a config
    assert stored(Component("model", "mine", build, "plugin")) == {
        "name": "mine", "width": 32, "rates": [0.1, 0.2], "path": None, "depth": 2, "required": None, "mode": "a"}
    assert stored(Component("model", "sized", needs, "plugin")) == {"name": "sized", "size": "???"}
    assert stored(Component("metric", "m", lambda task=None: None, "plugin")) == {"name": "m", "task": None}


@pytest.mark.parametrize("environment, secondary", [
    ({}, False), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, False), ({"LOCAL_RANK": "1"}, True),
    ({"RANK": "3", "LOCAL_RANK": "1"}, True), ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, True), ({"RANK": ""}, False),
], ids=["alone", "rank-0", "lightning-child", "torchrun", "second-node", "empty"])
def test_only_rank_0_of_a_distributed_job_is_the_first_process(monkeypatch, environment, secondary):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert secondary_process() is secondary


def test_a_killed_secondary_processs_scratch_is_removed_by_the_next_and_nothing_else(tmp_path):
    import os
    import subprocess
    import sys

    from coupler.train_app import SCRATCH_PREFIX, _remove_stale_scratch

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{SCRATCH_PREFIX}{gone.stdout.strip()}-abc"
    alive = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / "coupler-secondary-notes"
    for directory in (dead, alive, other):
        directory.mkdir()
        (directory / "file").write_text("x")
    _remove_stale_scratch(tmp_path)
    assert not dead.exists() and alive.is_dir() and other.is_dir()
