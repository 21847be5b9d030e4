"""``lsnet-export``'s console-script entry point, kept apart from the command's module.

``cli/export.py`` builds its options from the exporters package, which imports PyTorch. Importing it inside
``whole_command`` lets a torch-free install (``lsnet-deploy[runtime]``) answer ``lsnet-export`` with one line
naming the extra to install, instead of a traceback raised before any command code runs.
"""

from __future__ import annotations

from ..quiet import quiet_third_party_warnings
from .common import whole_command

PROG = "lsnet-export"


def main() -> None:
    """Console-script entry point."""
    quiet_third_party_warnings()
    with whole_command(PROG):
        from .export import app

        app(prog_name=PROG)
