"""base: VASA-1 / MegaPortraits sizes at 512x512 (train on GPUs)."""

from vasa_jax.config import default_config


def get_config():
    return default_config()
