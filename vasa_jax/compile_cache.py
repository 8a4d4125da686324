"""A persistent XLA compilation cache in the user's cache folder, so a second run starts without compiling.

JAX keys each compiled program by the program itself, the jax version and the device, so a stale entry is never
used. VASA_JAX_COMPILE_CACHE=0 turns it off; a path there chooses the folder; JAX_COMPILATION_CACHE_DIR, if set,
wins over both (JAX reads it itself).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "VASA_JAX_COMPILE_CACHE"
MIN_COMPILE_SECONDS = 0.5  # programs faster to compile than this are not worth a file


def cache_folder() -> Path | None:
    """Where the cache goes (None: turned off)."""
    setting = os.environ.get(ENV, "")
    if setting.strip().lower() in ("0", "off", "false", "no"):
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vasa-jax" / "xla"


def enable_compile_cache() -> Path | None:
    """Turns the cache on for this process (before the first compilation); returns its folder, or None when off
    or when the folder cannot be made (a read-only home: the run then simply compiles)."""
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    folder = cache_folder()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
