"""toy128: the toy config with 128x128 faces, for a demo whose lips the project's lip-sync score can read.

Why: the download-free lip-sync score (dlib's inner-lip landmarks against the audio envelope) reads real toy-world
footage of the demo's four first held-out people (8 s each, upscaled to 256 px) at 0.07-0.19 from 64 px frames,
0.22-0.60 (mean 0.43) from 128 px and 0.45-0.55 from 256 px: at 64 px even perfect generation scores below 0.2.
Cost against configs/toy.py, measured on this project's 2-core CPU: a training step 2.6 s against 1.6 s (XLA
counts 139 GFLOP against 65) with the encoders at 128 px; decoding stays cheap (0.55 GFLOP a frame against 0.38:
the volume stays 16^3 and one more 2x upsampling block renders the larger image), and the online mode keeps real
time with a face model of this size (vasa_jax.bench.bench_realtime, a 40-step toy128 face with the demo's motion
model, 30 s of live speech: first frame 0.20 s, p50 0.15 s, p95 0.20 s, 57.6 frames/s of compute).

How: a fine-tune of a configs/toy.py model (the README's recipe), its encoders frozen and reading 64 px, so that
model's stage-2 motion model drives this one (python -m vasa_jax.pipeline.export --motion-from).
Measured, the 64 px demo's face fine-tuned so for 700 steps (65 minutes on a 2-core CPU that day ran the 64 px
step in 3.8 s, not 1.6 s; python -m vasa_jax.face.evaluate, 512 held-out pairs, at 128 px against the 64 px
model at 64 px): self-reenactment 25.1 dB (25.3), SSIM 0.81 (0.79), cross-identity 21.0 dB (21.9), over the
mouth 24.5 dB (25.6), cross-identity pose error 2.4 degrees (2.1). Not good enough for a demo: its faces are
smoother but no sharper than the 64 px model's upscaled, dlib finds no face in its demo video (sample.py --seed 0
--size 256), and in the frames looked at neither model draws the demo portrait's mouth (a thin closed line) at
all. The 16^3 volume is the likely limit: at 128 px a volume cell is 8 pixels and the mouth about three cells
wide; the next try is volume_size 32, trained from scratch.
Its cost, measured with the planar CPU convolutions (vasa_jax.ops.conv): this config with volume_size 32,
appearance_widths (48, 64), warp_widths (64, 32, 16, 16), decoder_up_widths (32, 16) decodes a frame in 1.4
GFLOP and 59 ms (python -m vasa_jax.bench --quick, batch 3) and its online mode falls behind real time (18.5
frames/s of compute; the 64 px demo made 36.3 in the same session), and a training step (batch 8) took 9 s
(steps 2-10 of a run, nothing else running): 1500 steps would be ~4 hours. So a 32^3 volume at 128 px needs
narrower 3-D widths (about a third of the decode cost) to stay real time here.
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
