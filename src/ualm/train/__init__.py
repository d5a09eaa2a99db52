"""Training UALM (PyTorch Lightning). Torch-free at the package level, so configs can name the
stages without importing the trainer."""

STAGES = ("align", "pretrain", "sft", "dpo")
"""UALM's training stages, in the order of its recipe."""
