"""Error types that the CLI maps to exit codes (SPEC §1): usage errors exit 2, others 1."""

from __future__ import annotations


class BeadError(Exception):
    """A failure with a one-line, user-facing message (exit status 1)."""

    exit_code = 1


class UsageError(BeadError):
    """Bad command line or configuration (exit status 2)."""

    exit_code = 2


class DataError(BeadError):
    """Malformed, missing or inconsistent input data (exit status 1)."""


class MissingExtraError(BeadError):
    """An optional dependency group is not installed."""

    def __init__(self, extra: str, package: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs '{package}', which is not installed: "
            f"pip install 'bead-hep[{extra}]'"
        )
