"""Can the face model's motion encoder read the toy world's mouth opening at a given resolution? Not a test.

    python tests/reference/mouth_probe.py [--config configs/toy.py] [--size 64] [--steps 600] [--batch 32]

Trains a fresh motion encoder (the config's architecture, encoder_size set to --size) on one target only, its
first dynamics entry against the driver frame's lip-opening label (what face_train.loss.lip_opening asks of the
face model), on toy-world face pairs, and prints the held-out correlation every 100 steps. It tells apart "the
pixels do not show the mouth" from "the face model's training never asked for it": the bundled demo's dynamics
latent reads the mouth at a ridge correlation of 0.22 (python -m vasa_jax.face.evaluate, mouth_readout_r).
Minutes on a 2-core CPU (rendering the examples is the first two).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def examples(size: int, split: str, count: int):
    from vasa_jax.data.face_pairs import FacePairSource

    source = FacePairSource(size, split=split)
    items = [source[i] for i in range(count)]
    images = np.stack([item["driver"] for item in items]).astype(np.float32) / 255.0
    return images, np.stack([item["driver_lip_opening"] for item in items])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/toy.py")
    parser.add_argument("--size", type=int, default=64, help="the side of the images the encoder reads")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--train-examples", type=int, default=3000)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import optax

    from vasa_jax.config import load_config
    from vasa_jax.data.face_pairs import HELDOUT_EXAMPLES
    from vasa_jax.face import POSE_DIM, FaceConfig
    from vasa_jax.face.networks import MotionEncoder

    config = load_config(args.config)
    config.face.image_size, config.face.encoder_size = args.size, args.size
    encoder = MotionEncoder(FaceConfig.from_config(config.face))
    start = time.time()
    train_x, train_y = examples(args.size, "train", args.train_examples)
    test_x, test_y = examples(args.size, "heldout", HELDOUT_EXAMPLES)
    print(f"{len(train_x)} train / {len(test_x)} held-out examples at {args.size} px in {time.time() - start:.0f} s")

    params = encoder.init(jax.random.key(0), train_x[:1])
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(p):
            return jnp.mean((encoder.apply(p, x)[:, POSE_DIM] - y) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, value

    predict = jax.jit(lambda p, x: encoder.apply(p, x)[:, POSE_DIM])
    rng = np.random.default_rng(0)
    start = time.time()
    for n in range(1, args.steps + 1):
        pick = rng.integers(len(train_x), size=args.batch)
        params, opt_state, value = step(params, opt_state, train_x[pick], train_y[pick])
        if n % 100 == 0 or n == args.steps:
            guess = np.concatenate([predict(params, test_x[i:i + 128]) for i in range(0, len(test_x), 128)])
            r = np.corrcoef(guess, test_y)[0, 1]
            print(f"step {n}: train MSE {float(value):.4f}, held-out correlation {r:.3f}, "
                  f"MAE {np.abs(guess - test_y).mean():.3f} (constant guess: "
                  f"{np.abs(test_y - np.median(test_y)).mean():.3f}), {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
