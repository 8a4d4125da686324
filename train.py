"""Train vasa-jax.

  python train.py face --config configs/toy.py --workdir runs/face_toy [--config.face_train.steps=2000]
  python train.py motion --config configs/toy.py --workdir runs/motion_toy

Stage 1 ("face") trains the face latent space, stage 2 ("motion") the motion diffusion transformer (on the
motion source config.motion_data names). Rerunning a command with the same --workdir resumes it.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file, e.g. configs/toy.py", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "folder for checkpoints, logs and images (resumed if it has them)")
_QUIET = flags.DEFINE_bool("quiet", False, "no progress bar")

STAGES = ("face", "motion")


def main(argv):
    if len(argv) != 2 or argv[1] not in STAGES:
        raise app.UsageError(f"name the stage to train, one of {', '.join(STAGES)}: "
                             "python train.py motion --config configs/toy.py --workdir runs/motion_toy")
    if _CONFIG.value is None or not _WORKDIR.value:
        raise app.UsageError("--config and --workdir are required")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax narrates every save at INFO; --verbosity=0 shows it
    from vasa_jax.errors import ConfigError
    from vasa_jax.train.checkpoint import ConfigMismatchError
    from vasa_jax.train.loop import TrainingDiverged

    if argv[1] == "face":
        from vasa_jax.train.face import train_face as train_stage
    else:
        from vasa_jax.train.motion import train_motion as train_stage
    try:
        train_stage(_CONFIG.value, _WORKDIR.value, quiet=_QUIET.value)
    except (ConfigError, ConfigMismatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"done: checkpoints, logs and images are in {_WORKDIR.value}")
    return 0


if __name__ == "__main__":
    from vasa_jax.errors import ConfigError
    from vasa_jax.train.parallel import maybe_initialize_distributed

    try:  # before the flags load the config file, whose imports already touch jax
        maybe_initialize_distributed()  # multi-process runs (SLURM, Open MPI, ...) start here; one process: no-op
    except ConfigError as e:
        sys.exit(f"error: {e}")
    app.run(main)
