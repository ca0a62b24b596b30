"""`python -m bead` runs the command line."""

from bead.cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module too
    raise SystemExit(main())
