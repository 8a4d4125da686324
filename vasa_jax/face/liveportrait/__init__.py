"""LivePortrait (KwaiVGI) in JAX: its five networks with upstream's semantics, loading the public weights,
and the project's face interface over them (LivePortraitFaceModel).

    from vasa_jax.face.liveportrait import load_liveportrait
    model, params = load_liveportrait("pretrained_weights")   # upstream's folder, or a converted one
"""

from vasa_jax.face.liveportrait.config import LivePortraitConfig
from vasa_jax.face.liveportrait.face_model import LivePortraitFaceModel
from vasa_jax.face.liveportrait.model import LivePortrait, load_liveportrait

__all__ = ["LivePortrait", "LivePortraitConfig", "LivePortraitFaceModel", "load_liveportrait"]
