"""`python -m slimscope`."""

from slimscope.cli import main

raise SystemExit(main())
