"""vasa-jax: a JAX reimplementation of VASA-1.

    import vasa_jax
    video = vasa_jax.load_pipeline().generate("portrait.png", "speech.wav")
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import vasa_jax.io` (or the CLI's --help) should not have to import JAX and the models.
    if name == "load_pipeline":
        from vasa_jax.pipeline import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'vasa_jax' has no attribute {name!r}")
