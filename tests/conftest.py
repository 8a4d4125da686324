"""Shared pytest settings: tests run on the CPU with two simulated devices (for the data-parallel tests)."""

import os
import tempfile

from fast_xla import xla_flags

# Set before anything imports jax: the sharded-step tests need two devices, the suite must not grab a GPU, and
# XLA compiles cheaply (fast_xla.py).
os.environ.setdefault("XLA_FLAGS", xla_flags(devices=2))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests that build a trainer more than once (resume tests) compile the same step again; the persistent
# compilation cache, keyed by the program itself, turns those repeats into lookups. A fresh folder per session
# keeps runs independent.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vasa-jax-test-xla-"))
# Videos the tests write are signed (vasa_jax.provenance) with a per-installation credential made on first use:
# a fresh folder per session, not the runner's own ~/.config/vasa-jax.
os.environ.setdefault("VASA_JAX_CONFIG_DIR", tempfile.mkdtemp(prefix="vasa-jax-test-config-"))
# The workers (pytest-xdist, pyproject's addopts) inherit these folders: they share the compilation cache, and
# the credential is made once (credentials.py renames its folder into place).


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (each holds JAX, torch and its own compiled programs)."""
    return min(os.cpu_count() or 1, 4)
