"""`python -m bead` runs the command line."""

from bead.cli import main

raise SystemExit(main())
