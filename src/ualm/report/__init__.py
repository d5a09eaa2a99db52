"""`ualm report`: one self-contained HTML page about corpora and training runs."""

from ualm.report.build import render_report, write_report

__all__ = ["render_report", "write_report"]
