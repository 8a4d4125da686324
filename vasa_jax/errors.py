"""Errors a user can cause and fix, which command-line tools report in one line (exit code 2)."""


class ConfigError(ValueError):
    """A configuration that cannot work (sizes that do not fit, a schedule shorter than its warm-up, ...)."""
