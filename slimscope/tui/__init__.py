"""The Textual explorer (the only part of slimscope that imports Textual)."""
