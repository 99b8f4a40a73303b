"""``python -m covertreex``: the same command line as ``pcct``."""

from covertreex.cli import main

raise SystemExit(main())
