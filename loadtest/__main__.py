"""``python -m loadtest --help``."""

from loadtest.cli import main

raise SystemExit(main())
