"""JoyVASA's motion generator (jdh-algo, MIT code, weights on the hub as jdh-algo/JoyVASA) in JAX: speech to
LivePortrait motion, weight-compatible with upstream's checkpoints.

    model, params = load_joyvasa("JoyVASA")                          # the hub folder (or a converted one)
    motion = sample_motion(model, params, waveform, key)             # [frames, 70], 25 fps
    feats = model.audio_features(params, window, 100)                # the parts, for checking against upstream:
    out = model.denoise(params, x_t, feats, prev_motion, prev_audio, step)  # model.step(...) likewise
"""

from vasa_jax.motion.joyvasa.checkpoint import load_joyvasa, read_template, save_joyvasa
from vasa_jax.motion.joyvasa.config import POSITIONAL_ENCODINGS, JoyVasaConfig
from vasa_jax.motion.joyvasa.model import JoyVasa
from vasa_jax.motion.joyvasa.sampling import (JoyVasaStream, denormalize, sample_motion, sample_window, split_motion,
                                              window_noise)

__all__ = ["POSITIONAL_ENCODINGS", "JoyVasa", "JoyVasaConfig", "JoyVasaStream", "denormalize",
           "load_joyvasa", "read_template", "sample_motion", "sample_window", "save_joyvasa", "split_motion",
           "window_noise"]
