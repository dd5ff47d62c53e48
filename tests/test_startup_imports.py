"""What start-up costs: ``coupler train --help`` imports no machine-learning library, in every process it runs.

``coupler train ARGS`` execs ``coupler-train ARGS``, so the modules of the whole command are those of two
interpreters, the second replacing the first; ``sys.modules`` at exit would show only the second. Python's own
``-X importtime`` (the environment variable ``PYTHONPROFILEIMPORTTIME``, which exec passes on) lists every module
each process imports. (``coupler --help`` and ``coupler plugins`` run in one process: ``tests/test_cli.py``
checks them through ``sys.modules``.)
"""

from __future__ import annotations

from tests.conftest import coupler_process

#: what the help of a command must not load: the libraries of the models, not of the harness
HEAVY = {"torch", "lightning", "pytorch_lightning", "xgboost", "sklearn", "pandas", "matplotlib"}


def imported_packages(importtime_log: str) -> set[str]:
    """The top-level packages named in ``-X importtime`` lines (``import time: SELF | CUMULATIVE | NAME``)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in importtime_log.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_train_help_imports_hydra_and_no_machine_learning_library(tmp_path):
    result = coupler_process("train", "--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.rc == 0, result.err[-3000:]
    assert "coupler train" in result.out  # coupler-train's help, with Coupler's choices
    packages = imported_packages(result.err)
    assert {"hydra", "coupler"} <= packages  # the log covers the exec'd coupler-train too
    assert not packages & HEAVY, sorted(packages & HEAVY)
