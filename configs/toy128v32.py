"""toy128v32: configs/toy128.py with an 8 x 32 x 32 appearance volume (toy128's: 8 x 16 x 16) and narrow widths, sized
to keep the online mode real time on a 2-core CPU. The candidate renderer for a 128 px demo; trained 1700 steps
(below), not yet good enough for one.

Why: at 128 px configs/toy128.py's 16 x 16 volume gives the mouth about three cells, and its 700-step fine-tune
was no sharper than the 64 px demo upscaled. The same volume at 32 x 32 with toy.py's widths decodes a frame in
1.4 GFLOP and falls behind real time (18.5 frames/s online against the demo's 36.3, same session).
Sizing, measured on this project's 2-core CPU (python -m vasa_jax.face.summary for the decode FLOPs; python -m
vasa_jax.bench --config <this> --realtime, random weights and the toy motion model, 30 s of live speech; the
bundled demo in the same session gave 47.7 frames/s, first frame 198 ms, p95 207 ms): volume_channels 8 and a
last warp width of 8 halve the 3-D cost (1.40 -> 0.74 GFLOP); the upsampling blocks at 64 and 128 px are most of
what remains, hence decoder_up_widths (24, 8): 0.52 GFLOP a frame (toy.py 0.40, toy128.py 0.57); online 35.9
frames/s, first frame 221 ms, p50 181 ms, p95 230 ms, keeps up. ((16, 8) gives 0.46 GFLOP and 37.8 frames/s.)
The recipe below, run for 6 steps from the bundled demo and exported with --motion-from it (its cost is a
trained model's), keeps real time in the same way: online 31.1 frames/s, first frame 261 ms, p95 244 ms (the demo
46.1, 217 ms, 209 ms in that session). Training cost: 5.8 s a step (batch 8, encoders frozen; 6.3 s with
every part training) against toy.py's 2.5 s, so its 3000 steps are about 5 hours of this CPU: a run for a GPU.

How: as configs/toy128.py, the identity and motion encoders read 64 px and stay frozen as a toy.py model has them
(face_train.init_from that model; the then 64 px bundled demo was one), so that model's stage-2 motion model drives
this renderer (python -m vasa_jax.pipeline.export --motion-from); the appearance encoder, warps and decoder start
fresh (init_partial), so it trains as long as toy.py's face did.

Measured, the recipe above run 1700 steps (python train.py face --config configs/toy128v32.py --workdir <run>
--config.face_train.init_from=vasa_jax/assets/demo, steps 500 -> 1700 resumed with --config.face_train.steps=1700,
so its cosine schedule ends there; 2 h 12 min on this CPU at 4-5 s a step): train-batch PSNR 16.5 dB at step
100, 20.5 at 375, 21.4 at 700, 22.5 at 1000, 23.0-23.2 at 1400-1700. python -m
vasa_jax.face.evaluate --pairs 512: self-reenactment 23.2 dB (the 64 px demo: 25.3), SSIM 0.76, cross-identity
20.7 dB, over the mouth 24.1 dB, cross pose error 2.1 degrees. Its faces are blocky at the volume's cells and draw
eyes and noses but no mouth, and dlib finds no face in its demo video (exported --motion-from the demo, sample.py
--size 256), so the lip-sync score cannot be read. More steps (its 3000) are not measured yet: a run for a GPU.
That exported model keeps real time (python -m vasa_jax.bench --checkpoint <it> --realtime): first frame
232 ms, p50 182 ms, p95 231 ms, 35.3 frames/s of compute, keeps up.
"""

from pathlib import Path

from vasa_jax.config import load_config


def get_config():
    config = load_config(Path(__file__).with_name("toy128.py"))
    face = config.face
    face.volume_size, face.volume_channels = 32, 8
    face.appearance_widths = (48, 64)  # 128 -> 64 -> 32
    face.warp_widths = (64, 32, 16, 8)  # from 4 x 4 up to 32 x 32
    face.decoder_2d_channels = 32
    face.decoder_up_widths = (24, 8)  # 32 -> 64 -> 128
    train = config.face_train
    # Not a fine-tune: only the encoders carry over.
    train.steps, train.learning_rate, train.warmup_steps = 3000, 1e-3, 100
    return config
