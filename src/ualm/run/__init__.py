"""`ualm run`: the whole pipeline (build → tokenize → synth → blend → train → generate →
report → publish) from one YAML config, each stage skipped when already complete."""

from ualm.run.config import PipelineConfig
from ualm.run.pipeline import PipelineResult, format_summary, run_pipeline

__all__ = ["PipelineConfig", "PipelineResult", "format_summary", "run_pipeline"]
