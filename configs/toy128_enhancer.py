"""toy128_enhancer: a configs/toy.py face (64 px) with an enhancer that renders 128 px, trained alone on top of it
(the bundled demo's face).

Why: the project's lip-sync score reads real toy footage at 0.07-0.19 from 64 px frames and 0.22-0.60 (mean 0.43)
from 128 px (configs/toy128.py), and a 64 px face does not read as a face; but the 128 px renderers trained whole
(toy128: one more 2x block; toy128v32: a 32^3 volume, 2 h 12 min for 1700 steps here) stayed as soft as their 16^3
volumes. MegaPortraits' high-resolution stage is trained on a frozen base model; here it also reads (z_dyn, z_id)
and the source image warped by the base's warps (the source skip, FOMM's occlusion-aware blend), which carries the
detail the volume cannot: eyes, brows, hair, freckles.

How: the warping model keeps configs/toy.py's widths and reads and renders 64 px (face.base_size); everything but
the enhancer is frozen and taken from face_train.init_from (a configs/toy.py run or pipeline), so that model's
stage-2 motion model drives this one unchanged (python -m vasa_jax.pipeline.export --motion-from). Two runs with
face_train.enhancer_only: this config (L1, perceptual and a mouth term weighted up, no discriminator, one render a
step), then from it the adversarial terms as well, which sharpen it and draw the lips:

    python train.py face --config configs/toy128_enhancer.py --workdir runs/enhancer \
        --config.face_train.init_from=runs/face_lip_encoder
    python train.py face --config configs/toy128_enhancer.py --workdir runs/enhancer_gan \
        --config.face_train.init_from=runs/enhancer --config.face_train.loss.adversarial=0.5 \
        --config.face_train.steps=1000 --config.face_train.learning_rate=5e-4

Measured on this project's 2-core CPU, from the README's lip-label motion encoder (its step 1): 1500 steps in 22
min, then 1000 in 17 min. Train-batch PSNR 25.9 dB at step 50 (about the base upscaled) -> 26.9 at 1500, the
mouth term 0.033 -> 0.029; the second run ended at 26.2 dB and 0.030. python -m vasa_jax.face.evaluate --pairs
512 of the second run, at 128 px: see the README (the bundled demo's face). In both runs' image grids eyes, brows,
hair and freckles are nearly as sharp as the toy world's; after the second the lips are drawn, but the mouth does
not open with the lip opening (face.evaluate's mouth response 0.024 half open, 0.000 fully open: the source skip
copies the portrait's shut mouth), so lip sync stays low. Decoding costs 0.69 GFLOP a frame (configs/toy.py 0.40;
python -m vasa_jax.face.summary) and keeps real time (the README's table).
"""

from pathlib import Path

from vasa_jax.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("toy.py"))
    config.face.image_size = 128
    config.face.enhancer_widths = (16,)  # 64 -> 128
    train = config.face_train
    train.init_partial = True
    train.enhancer_only = True  # the rest frozen
    train.steps, train.learning_rate, train.warmup_steps = 1500, 1e-3, 50
    # The mouth is a few percent of the image; the discriminator comes in the second run (docstring).
    train.loss.mouth, train.loss.adversarial = 30.0, 0.0
    return config
