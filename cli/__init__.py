"""garvid's command-line interface (installed as the ``garvid_cli`` package)."""
