"""What every vasa-jax command line shares: one-line usage errors, and user-supplied functions by name."""

from __future__ import annotations

import argparse
import importlib
import sys

from vasa_jax.errors import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (no usage block) with exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def load_function(spec: str, option: str, example: str = "mypackage.module:function"):
    """The callable named by "package.module:function" (a labeler, a metric network, ...); ConfigError naming
    the command-line `option` if it cannot be had."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{option} {spec!r}: expected module:function (such as {example})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{option} {spec!r}: cannot import {module_name} ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{option} {spec!r}: {module_name} has no function {attr}")
    return fn


def run_for_user(action) -> int:
    """Runs action() -> exit code; a user's mistake (ConfigError, CheckpointError, MediaError: bad input) is
    one line on stderr and exit code 2, never a traceback."""
    from vasa_jax.io import CheckpointError, MediaError

    try:
        return action()
    except (ConfigError, CheckpointError, MediaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
