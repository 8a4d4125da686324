"""Export a pipeline checkpoint (what sample.py and vasa_jax.load_pipeline read) from two training runs.

  python -m vasa_jax.pipeline.export --face runs/face_toy --motion runs/motion_face --out DIR
  python -m vasa_jax.pipeline.export --face runs/face_toy --motion runs/motion_face --out vasa_jax/assets/demo --demo
  python -m vasa_jax.pipeline.export --face runs/face128 --motion-from runs/demo64 --out DIR

The stage-2 run must have been trained on the stage-1 run's motion (train.py motion
--config.motion_data.source=face_model --config.motion_data.face_workdir=<the stage-1 workdir>). --demo also
writes the demo's portrait (a held-out toy-world face the model never saw) and speech (that face's voice)
and checks that the folder fits the 30 MB the package may carry. --motion-from takes the motion model of an
existing pipeline checkpoint instead: the face run must have kept that pipeline's motion encoder frozen
(face_train.init_from=<it>, face_train.freeze=motion; configs/toy128.py), so the motion means the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vasa_jax.cli import OneLineParser

from vasa_jax.pipeline.checkpoint import (DEMO_PORTRAIT, DEMO_SIZE_LIMIT, DEMO_SPEECH, DTYPES, export_pipeline,
                                          folder_size, replace_face)

DEMO_PORTRAIT_SIZE = 256  # pixels: the demo photo is framed by the same detector and crop as any photo
DEMO_SEED = 11


def write_demo_media(folder, *, seconds: float = 8.0) -> int:
    """Writes DEMO_PORTRAIT and DEMO_SPEECH into `folder`: the first held-out toy identity whose neutral render
    the face detector finds, and speech in its voice. Returns the identity."""
    from vasa_jax.data import toyworld
    from vasa_jax.io import save_audio, save_image
    from vasa_jax.pipeline.portrait import Framer, NoFaceError

    framer = Framer(64)
    for identity in toyworld.HELDOUT_IDENTITIES:
        person = toyworld.sample_identity(identity)
        image = toyworld.render(person, toyworld.neutral_state(1), DEMO_PORTRAIT_SIZE)[0]
        try:
            framer.face_box(image, None)
        except NoFaceError:
            continue
        audio, _ = toyworld.perform(DEMO_SEED, identity=identity, seconds=seconds)
        save_image(Path(folder) / DEMO_PORTRAIT, image)
        save_audio(Path(folder) / DEMO_SPEECH, np.clip(audio, -1.0, 1.0))
        return identity
    raise RuntimeError("the face detector found none of the held-out toy identities")


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m vasa_jax.pipeline.export", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--face", required=True, help="stage-1 workdir (train.py face)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--motion", help="stage-2 workdir trained on that face model's motion")
    source.add_argument("--motion-from", metavar="PIPELINE",
                        help="a pipeline checkpoint whose motion model to keep (its motion encoder frozen in --face)")
    p.add_argument("--out", required=True, help="the pipeline checkpoint folder to write")
    p.add_argument("--dtype", choices=DTYPES, help="how weights are stored (loaded as float32); default float32, "
                                                   "with --motion-from that pipeline's")
    p.add_argument("--face-step", type=int, help="default: the step stage 2 was trained on, else the latest")
    p.add_argument("--motion-step", type=int, help="default: the latest")
    p.add_argument("--copy-audio", action="store_true", help="copy a Wav2Vec2 / HuBERT checkpoint folder along")
    p.add_argument("--demo", action="store_true", help="also write the demo portrait and speech; check the size")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)

    from vasa_jax.errors import ConfigError
    from vasa_jax.io import CheckpointError

    try:
        if args.motion_from:
            if args.motion_step is not None or args.copy_audio:
                raise ConfigError("--motion-step and --copy-audio belong to --motion; --motion-from copies that "
                                  "pipeline's motion model and audio as they are")
            out = replace_face(args.motion_from, args.face, args.out, dtype=args.dtype, face_step=args.face_step,
                               overwrite=args.overwrite)
        else:
            out = export_pipeline(args.face, args.motion, args.out, dtype=args.dtype or "float32",
                                  face_step=args.face_step, motion_step=args.motion_step,
                                  copy_audio=args.copy_audio, overwrite=args.overwrite)
        if args.demo:
            identity = write_demo_media(out)
            print(f"demo: toy identity {identity} (held out), {DEMO_PORTRAIT} and {DEMO_SPEECH}")
        size = folder_size(out)
        print(f"wrote {out} ({size / 2**20:.1f} MB)")
        if args.demo and size > DEMO_SIZE_LIMIT:
            print(f"error: {out} is {size / 2**20:.1f} MB, over the {DEMO_SIZE_LIMIT / 2**20:.0f} MB the package may "
                  "carry; export again with --dtype float16 --overwrite", file=sys.stderr)
            return 2
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
