"""``python -m garvid_cli``: the same as the ``garvid`` command."""

from garvid_cli.main import main

main()
