"""Which process of a distributed job this is.

A distributed strategy runs the training command in several processes: Lightning's DDP re-executes the command
line once per extra device, ``torchrun`` starts it once per rank. Each process composes the config and trains;
only the first (rank 0) checks the run directory, writes it and prints. The others are *secondary*: they train
their share and write nothing the user sees.
"""

from __future__ import annotations

import os

#: the environment variables that launchers set to a process's rank: torchrun sets RANK (and LOCAL_RANK),
#: Lightning's DDP launcher sets LOCAL_RANK and NODE_RANK in the processes it starts
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK")


def secondary_process() -> bool:
    """Whether this process is a rank other than 0 of a distributed job (any of ``RANK_VARIABLES`` above 0)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return True
    return False
