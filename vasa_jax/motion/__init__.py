"""Stage 2: the audio-conditioned motion diffusion transformer (denoiser, diffusion, guidance, sampling)."""

from vasa_jax.motion.conditions import Conditions, DropoutRates
from vasa_jax.motion.config import CONDITIONS, MotionConfig
from vasa_jax.motion.denoiser import MotionDenoiser, init_denoiser
from vasa_jax.motion.sampling import Controls, MotionStream, guided_x0, sample_windows

__all__ = ["CONDITIONS", "Conditions", "Controls", "DropoutRates", "MotionConfig", "MotionDenoiser", "MotionStream",
           "guided_x0", "init_denoiser", "sample_windows"]
