"""Renderings of an Analysis: the JSON document and the text summary."""
