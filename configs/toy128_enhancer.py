"""toy128_enhancer: a configs/toy.py face (64 px) with an enhancer that renders 128 px, trained alone on top of it.

Why: the project's lip-sync score reads real toy footage at 0.07-0.19 from 64 px frames and 0.22-0.60 (mean 0.43)
from 128 px (configs/toy128.py), so the demo needs 128 px; but the 128 px renderers tried so far (toy128: one more
2x block; toy128v32: a 32^3 volume from scratch, 2 h 12 min for 1700 steps here) drew no mouth. Their decoders see
only the warped volume, where a toy mouth's opening is a fraction of a cell. MegaPortraits' high-resolution stage is
trained on a frozen base model; here that stage also reads (z_dyn, z_id), so a motion encoder that carries the lip
opening (face_train.loss.lip_opening; the README's recipe) can open the mouth it draws.

How: the warping model keeps configs/toy.py's widths and reads and renders 64 px (face.base_size); everything but
the enhancer is frozen and taken from face_train.init_from (a configs/toy.py run or pipeline), so that model's
stage-2 motion model drives this one unchanged (python -m vasa_jax.pipeline.export --motion-from).
face_train.enhancer_only trains on the reconstruction terms alone, with no discriminator and one render a step.

Measured on this project's 2-core CPU (on a day it ran the 64 px labels-only step at 2.2 steps/s), from the
README's lip-label motion encoder (its step 1; the renderer is the bundled demo's): 1500 steps, 33.5 min at 1.3 s a
step beside a stage-2 run (python train.py face --config configs/toy128_enhancer.py --workdir <run>
--config.face_train.init_from=<that run>). Train-batch PSNR 25.8 dB at step 50 (about the base upscaled) -> 26.1 at
1500, the mouth term flat (0.033 -> 0.032). python -m vasa_jax.face.evaluate --pairs 512, at 128 px: self-reenactment
26.1 dB, SSIM 0.84, over the mouth 25.0 dB, cross-identity 22.9 dB, cross pose error 2.1 degrees, mouth read-out
0.90 (configs/toy128.py's 700-step fine-tune: 25.1 dB, 0.81, 24.5, 21.0, 2.4; configs/toy128v32.py after 1700 steps:
23.2 dB). So it is the best 128 px renderer so far by every figure, but in its image grids the faces stay as soft as
the base's and it draws no mouth: the enhancer did not learn to use the lip opening it is given. Decoding costs
0.63 GFLOP a frame (configs/toy.py 0.40; python -m vasa_jax.face.summary). Exported --motion-from a pipeline of
that encoder and a stage-2 model trained on it, its videos of the demo's portrait and speech (256 px, seeds 0-2)
gave dlib no face in one of three and a lip-sync score of 0.03 offline, so it is not the demo. That pipeline keeps
real time (python -m vasa_jax.bench --realtime --checkpoint <it>, 4 online steps: first frame 0.21 s, p95 0.21 s,
46.5 frames/s of compute; the 64 px demo 62.6 in the same session).
"""

from pathlib import Path

from vasa_jax.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("toy.py"))
    config.face.image_size = 128
    config.face.enhancer_widths = (16,)  # 64 -> 128
    train = config.face_train
    train.init_partial = True
    train.enhancer_only = True  # the rest frozen; the reconstruction terms only
    train.steps, train.learning_rate, train.warmup_steps = 1500, 1e-3, 50
    return config
