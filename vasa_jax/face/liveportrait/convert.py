"""Converts LivePortrait's released weights into a folder vasa-jax loads without torch.

    python -m vasa_jax.face.liveportrait.convert --weights pretrained_weights --out liveportrait_jax

--weights: upstream's folder (base_models/, retargeting_models/) or the hub download's root holding
liveportrait/. The output holds liveportrait.safetensors and liveportrait.json (the networks' sizes); it is
written whole (never half), and an existing folder is never replaced without
--overwrite. Exit codes: 0 done, 2 bad input (one line naming the file and the problem).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vasa_jax.cli import run_for_user
from vasa_jax.face.liveportrait.model import load_liveportrait, save_converted
from vasa_jax.io.folders import folder_written_whole


def convert(weights, out, *, overwrite: bool = False, config=None) -> Path:
    """Reads upstream's weights (CheckpointError if unusable) and writes the converted folder `out`.
    config: the networks' sizes (default: the released full size)."""
    from vasa_jax.errors import ConfigError

    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose a new folder or pass --overwrite")
    model, params = load_liveportrait(weights, config=config)
    with folder_written_whole(out) as tmp:
        save_converted(params, model.config, tmp)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vasa_jax.face.liveportrait.convert",
                                description="LivePortrait's .pth weights -> safetensors + json for vasa-jax")
    p.add_argument("--weights", required=True, help="upstream's weights folder (base_models/, retargeting_models/)")
    p.add_argument("--out", required=True, help="the converted folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return e.code

    def run() -> int:
        print(f"wrote {convert(args.weights, args.out, overwrite=args.overwrite)}")
        return 0

    return run_for_user(run)


if __name__ == "__main__":
    sys.exit(main())
