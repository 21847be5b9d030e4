"""``python -m lsnet_deploy`` is ``lsnet-export``."""

from .cli.export_entry import main

main()
