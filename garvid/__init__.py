"""garvid: video region understanding with SAM2 tracking and the GAR region-aware MLLM.

One package per pipeline stage, in the order data moves (each imports only the stages
before it; ``pyproject.toml``'s import-linter contracts keep it so)::

    media -> regions -> tracking | gar -> qa -> output -> batch | eval

Shared basics at the top level import no stage: ``errors``, ``paths``, ``devices``,
``presets``, ``options`` (prompt and decoding options) and ``files`` (atomic writes).
"""

__version__ = "0.1.0"
