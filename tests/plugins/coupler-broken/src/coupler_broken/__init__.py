"""Deliberately broken: importing it fails, as a plugin with a missing dependency would."""

import coupler_dependency_that_does_not_exist  # noqa: F401
