"""Shared pytest settings: tests run on the CPU with two simulated devices (for the data-parallel tests)."""

import os
import tempfile

# Set before anything imports jax: the sharded-step tests need two devices, and the suite must not grab a GPU.
# XLA's CPU backend optimisation is skipped: the tests' programs are small and run a few times each, so
# compiling them dominates the suite (halved without it); the computations are the same.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0 "
                      "--xla_llvm_disable_expensive_passes=true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests that build a trainer more than once (resume tests) compile the same step again; the persistent
# compilation cache, keyed by the program itself, turns those repeats into lookups. A fresh folder per session
# keeps runs independent.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="vasa-jax-test-xla-"))
# Videos the tests write are signed (vasa_jax.provenance) with a per-installation credential made on first use:
# a fresh folder per session, not the runner's own ~/.config/vasa-jax.
os.environ.setdefault("VASA_JAX_CONFIG_DIR", tempfile.mkdtemp(prefix="vasa-jax-test-config-"))
