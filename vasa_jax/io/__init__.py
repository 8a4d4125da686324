"""Media input and output: one loader per medium for the whole project.

Every loader raises MediaError (a ValueError) naming the file and the problem for input a user gets wrong.
"""

from vasa_jax.io.audio import SAMPLE_RATE, load_audio, resample, save_audio
from vasa_jax.io.errors import MediaError
from vasa_jax.io.image import load_image, save_image
from vasa_jax.io.weights import CheckpointError, read_state_dict
from vasa_jax.io.video import (VideoData, VideoInfo, VideoWriter, iter_video_frames, probe_video, read_video,
                               read_video_audio, write_video)

__all__ = [
    "SAMPLE_RATE", "CheckpointError", "MediaError", "VideoData", "VideoInfo", "VideoWriter", "iter_video_frames", "load_audio",
    "load_image", "probe_video", "read_state_dict", "read_video", "read_video_audio", "resample", "save_audio",
    "save_image", "write_video",
]
