"""One pipeline checkpoint from public weights: LivePortrait's face model and JoyVASA's motion generator.

    python -m vasa_jax.pipeline.import_public --liveportrait DIR --joyvasa DIR --hubert DIR --out DIR
    python -m vasa_jax.pipeline.import_public --from-hub --out DIR       # fetches the three through huggingface_hub

--liveportrait: `huggingface-cli download KwaiVGI/LivePortrait` (its liveportrait/ models; upstream's layout or
a converted folder); --joyvasa: `jdh-algo/JoyVASA` (motion_generator/*.pt, motion_template/); --hubert:
`TencentGameMate/chinese-hubert-base` (config.json and weights). The output is a pipeline checkpoint
(pipeline.json, face.safetensors, joyvasa/) that `sample.py --checkpoint DIR` and vasa_jax.load_pipeline(DIR)
use, loadable without torch. Nothing runs code from the downloaded files (torch.load(weights_only=True) and a
restricted unpickler). Offline, --from-hub takes what the hub cache already holds, else says exactly what to
download and where. Exit codes: 0 done, 2 bad input (one line), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HUB = {  # what each part needs from its hub repository
    "liveportrait": ("KwaiVGI/LivePortrait", ["liveportrait/base_models/*", "liveportrait/retargeting_models/*"]),
    "joyvasa": ("jdh-algo/JoyVASA", ["motion_generator/*", "motion_template/*"]),
    "hubert": ("TencentGameMate/chinese-hubert-base", ["config.json", "*.bin", "*.safetensors",
                                                       "preprocessor_config.json"]),
}
MOTION_FOLDER = "joyvasa"


def fetch_from_hub(cache_dir=None) -> dict[str, Path]:
    """The three repositories' files through huggingface_hub (the cache when offline); ConfigError saying what to
    download and where when they can be had neither way."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from vasa_jax.errors import ConfigError

    folders = {}
    for part, (repo, patterns) in HUB.items():
        try:
            folders[part] = Path(snapshot_download(repo, allow_patterns=patterns, cache_dir=cache_dir))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
            commands = "; ".join(f"huggingface-cli download {r} --include {' '.join(repr(p) for p in ps)}"
                                 for r, ps in HUB.values())
            raise ConfigError(f"cannot fetch {repo} ({type(e).__name__}); offline, download the weights on a "
                              f"machine with internet ({commands}) into the hub cache "
                              f"({cache_dir or 'HF_HOME'}), or pass --liveportrait, --joyvasa and --hubert "
                              "folders") from None
    return folders


def import_public(liveportrait, joyvasa, hubert, out, *, overwrite: bool = False) -> Path:
    """Writes the pipeline checkpoint `out` (under a temporary name, renamed when complete); CheckpointError or
    ConfigError naming the file for unusable input."""
    from safetensors.numpy import save_file

    from vasa_jax import __version__
    from vasa_jax.errors import ConfigError
    from vasa_jax.face.liveportrait import LivePortraitFaceModel, load_liveportrait
    from vasa_jax.io.folders import folder_written_whole
    from vasa_jax.io.weights import flatten
    from vasa_jax.motion.joyvasa import load_joyvasa, save_joyvasa
    from vasa_jax.motion.joyvasa.generator import JoyVasaGenerator
    from vasa_jax.pipeline.checkpoint import FACE_WEIGHTS, FORMAT, FORMAT_VERSION, MANIFEST

    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose a new folder or pass --overwrite")
    lp_model, lp_params = load_liveportrait(liveportrait)
    face = LivePortraitFaceModel(lp_model.config)
    jv_model, jv_params = load_joyvasa(joyvasa, hubert)
    generator = JoyVasaGenerator(jv_model, jv_params)
    if generator.motion_dim != face.motion_dim:
        raise ConfigError(f"{joyvasa}: makes motion of {jv_model.config.motion_dim} numbers; LivePortrait's "
                          f"{face.config.num_kp} keypoints need 70")
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "vasa_jax_version": __version__,
                "weights_dtype": "float32", "face": face.manifest(),
                "motion": {"implementation": generator.name, "folder": MOTION_FOLDER},
                "sources": {"liveportrait": os.path.abspath(liveportrait), "joyvasa": os.path.abspath(joyvasa),
                            "hubert": None if hubert is None else os.path.abspath(hubert)}}
    with folder_written_whole(out) as tmp:
        save_file({k: v.astype("float32") for k, v in flatten(lp_params).items()}, tmp / FACE_WEIGHTS,
                  metadata={"format": FORMAT})
        save_joyvasa(tmp / MOTION_FOLDER, jv_model, jv_params)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def main(argv=None) -> int:
    from vasa_jax.cli import OneLineParser, run_for_user

    p = OneLineParser(prog="python -m vasa_jax.pipeline.import_public", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--liveportrait", help="LivePortrait's weights folder")
    p.add_argument("--joyvasa", help="JoyVASA's folder (motion_generator/, motion_template/) or its .pt")
    p.add_argument("--hubert", help="the chinese-hubert-base folder (JoyVASA's audio encoder)")
    p.add_argument("--from-hub", action="store_true", help="fetch all three through huggingface_hub")
    p.add_argument("--cache-dir", help="with --from-hub: the hub cache folder (default: huggingface_hub's)")
    p.add_argument("--out", required=True, help="the pipeline checkpoint folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    if not args.from_hub and not (args.liveportrait and args.joyvasa):
        p.error("give --liveportrait and --joyvasa (and --hubert), or --from-hub")

    def run() -> int:
        if args.from_hub:
            folders = fetch_from_hub(args.cache_dir)
            args.liveportrait, args.joyvasa, args.hubert = (folders[k] for k in ("liveportrait", "joyvasa", "hubert"))
        out = import_public(args.liveportrait, args.joyvasa, args.hubert, args.out, overwrite=args.overwrite)
        print(f"wrote {out}: python sample.py --image PHOTO --audio SPEECH --checkpoint {out}")
        return 0

    return run_for_user(run)


if __name__ == "__main__":
    sys.exit(main())
