"""ualm: the corpus engine for unified audio language models."""

__version__ = "0.1.0"
