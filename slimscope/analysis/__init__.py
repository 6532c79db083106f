"""Analyses over a read image; everything here is plain data shared by the JSON, the text and the TUI."""

from slimscope.analysis.core import Analysis, analyze

__all__ = ["Analysis", "analyze"]
