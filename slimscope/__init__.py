"""slimscope: layer-level container image analyzer."""

__version__ = "0.1.0"
