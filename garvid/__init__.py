"""garvid: video region understanding with SAM2 tracking and the GAR region-aware MLLM."""

__version__ = "0.1.0"
