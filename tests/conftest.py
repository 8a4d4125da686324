"""Shared pytest settings: tests run on the CPU with two simulated devices (for the data-parallel tests)."""

import os

# Set before anything imports jax: the sharded-step tests need two devices, and the suite must not grab a GPU.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
