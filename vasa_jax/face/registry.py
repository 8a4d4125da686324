"""Which face model a checkpoint holds: one table from the name it records to the implementation.

A checkpoint's face section is the model's manifest(): {"implementation": NAME, ...}. Sections written before
the table existed hold the VASA face model's config fields alone, and still read as that model. Adding a
face model is a line here; nothing else in the pipeline names one.
"""

from __future__ import annotations

import importlib

from vasa_jax.errors import ConfigError

FACE_MODELS = {
    "vasa": "vasa_jax.face.model:WarpingFaceModel",
    "liveportrait": "vasa_jax.face.liveportrait.face_model:LivePortraitFaceModel",
}


def face_model(section: dict):
    """The FaceModel a manifest section describes; ConfigError for an unknown implementation or bad config."""
    if not isinstance(section, dict):
        raise ConfigError(f"a face model section must be a mapping; got {type(section).__name__}")
    if "implementation" not in section:
        section = {"implementation": "vasa", "config": section}
    name = section["implementation"]
    if name not in FACE_MODELS:
        raise ConfigError(f"unknown face model {name!r}; this vasa-jax knows {sorted(FACE_MODELS)}")
    module, _, cls = FACE_MODELS[name].partition(":")
    return getattr(importlib.import_module(module), cls).from_manifest(section)


# Folders of face weights without training steps, whose motion stage 2 can train on: a module with
# holds_weights(folder) -> bool and load_face_weights(folder) -> (face model, params). Public weights others
# publish (LivePortrait's), and a pipeline checkpoint's face model (e.g. retraining the bundled demo's motion).
PUBLIC_WEIGHTS = {
    "liveportrait": "vasa_jax.face.liveportrait.face_model",
    "pipeline": "vasa_jax.pipeline.checkpoint",
}


def _public_model(folder):
    for module in PUBLIC_WEIGHTS.values():
        module = importlib.import_module(module)
        if module.holds_weights(folder):
            return module
    return None


def is_public_face(folder) -> bool:
    """Whether `folder` holds face weights this table knows (LivePortrait's, or a pipeline checkpoint's)."""
    return _public_model(folder) is not None


def load_public_face(folder):
    """(face model, params) from a public face model's weights folder (LivePortrait's, upstream's layout or
    converted); ConfigError if the folder holds none this table knows, CheckpointError for a broken one."""
    module = _public_model(folder)
    if module is None:
        raise ConfigError(f"{folder}: holds no public face model's weights (known: {sorted(PUBLIC_WEIGHTS)})")
    return module.load_face_weights(folder)
