"""XLA settings that make the suite's compiles cheap: the tests' programs are small and run a few times each, so
compiling them dominates the suite. The computations are the same; only the generated code is slower.

Measured on this project's 2-core CPU: skipping the backend's optimisation halved the suite; compiling
configs/tiny.py's stage-1 training step took 25-30 s with that alone and 12-19 s with the CPU's fusion emitters
also off (XLA then emits its fusions the older way).
"""

COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a test process with `devices` simulated CPU devices."""
    options = " ".join(f"--{name}={str(value).lower()}" for name, value in COMPILER_OPTIONS.items())
    return f"--xla_force_host_platform_device_count={devices} {options}"
