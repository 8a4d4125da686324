"""toy128: the toy config with 128x128 faces, for a demo whose lips the project's lip-sync score can read.

Why: the download-free lip-sync score (dlib's inner-lip landmarks against the audio envelope) reads real toy-world
footage of the demo's four first held-out people (8 s each, upscaled to 256 px) at 0.07-0.19 from 64 px frames,
0.22-0.60 (mean 0.43) from 128 px and 0.45-0.55 from 256 px: at 64 px even perfect generation scores below 0.2.
Cost against configs/toy.py, measured on this project's 2-core CPU: a training step 2.6 s against 1.6 s (XLA
counts 139 GFLOP against 65), so 2000 steps take about an hour and a half; decoding stays cheap (0.55 GFLOP a
frame against 0.38: the volume stays 16^3 and one more 2x upsampling block renders the larger image), and the
online mode keeps real time with a face model of this size (vasa_jax.bench.bench_realtime, a 40-step toy128
face with the demo's motion model, 30 s of live speech: first frame 0.20 s, p50 0.15 s, p95 0.20 s, 57.6
frames/s of compute).
"""

from pathlib import Path

from vasa_jax.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("toy.py"))
    face = config.face
    face.image_size = 128
    face.appearance_widths = (32, 48, 64)  # one more 2x step from the volume's 16 to 128
    face.decoder_up_widths = (32, 16, 16)
    # The identity and motion encoders read 64 px, as configs/toy.py's do: with them frozen from a toy.py model
    # (init_from, init_partial), the motion space stays that model's, and a stage-2 model trained on it drives
    # this renderer unchanged.
    face.encoder_size = 64
    train = config.face_train
    train.init_partial = True
    train.freeze = ("identity", "motion")
    # A fine-tune: the warps and the decoder's trunk start trained.
    train.steps, train.learning_rate, train.warmup_steps = 700, 5e-4, 50
    return config
