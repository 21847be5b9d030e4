"""``python -m lsnet_deploy`` is ``lsnet-export``."""

from .cli.export import main

main()
