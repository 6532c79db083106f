"""Subcommands: `slimscope diff`, `slimscope suggest`."""
