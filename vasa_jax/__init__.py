"""vasa-jax: a JAX reimplementation of VASA-1."""

__version__ = "0.1.0"
