"""Imported by Hydra's plugin scan: leaves a marker file (at the path in COUPLER_TEST_HYDRA_MARKER) to show
that it ran. When the plugin ``hydra_marker`` is disabled or not allowed, Hydra must not import it."""

import os
from pathlib import Path

if os.environ.get("COUPLER_TEST_HYDRA_MARKER"):
    Path(os.environ["COUPLER_TEST_HYDRA_MARKER"]).write_text("imported\n")
