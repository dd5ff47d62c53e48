"""Calls ``sys.exit`` while it is imported: Coupler must report it as a failed plugin and go on."""

import sys

sys.exit(3)
