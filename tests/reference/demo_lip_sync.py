"""How well a pipeline's videos follow their speech, against real toy-world clips (issue 17's demo check).

    python tests/reference/demo_lip_sync.py [--checkpoint vasa_jax/assets/demo] [--clips 5] [--out runs/demo_sync]
                                            [--online-steps 4,10]

For each of `clips` held-out toy people: a 10 s real clip (its first frame is the portrait, its speech the
audio) and the pipeline's videos of them, offline and online, all scored by `python -m vasa_jax.eval` (the
download-free lip-sync correlation from dlib's inner-lip landmarks, and Delta-P from poses the pipeline's own
face model reads back); with --online-steps, online videos at each of those denoising steps as well ("online_N").
Prints per-clip figures and the means as JSON. Minutes on a 2-core CPU; not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def evaluate(video: Path, audio: Path, face: str) -> dict:
    """Lip-sync correlation and Delta-P of a video; None for each where dlib finds no face in it."""
    out = video.with_suffix(".metrics.json")
    run = subprocess.run([sys.executable, "-m", "vasa_jax.eval", "--video", str(video), "--audio", str(audio),
                          "--face-workdir", face, "--json", str(out)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        print(f"{video}: {run.stderr.strip().splitlines()[-1]}", file=sys.stderr)
        return {"sync": None, "delta_p": None}
    metrics = json.loads(out.read_text())
    return {"sync": metrics["sync"]["sync_correlation"] if "sync" in metrics else None,
            "delta_p": metrics["pose"]["delta_p"] if "pose" in metrics else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="vasa_jax/assets/demo")
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=256, help="output side of the generated videos")
    parser.add_argument("--out", default="runs/demo_sync")
    parser.add_argument("--online-steps", default="",
                        help="comma-separated denoising steps of extra online videos (default: only the model's own)")
    args = parser.parse_args()

    from vasa_jax.data import toyworld
    from vasa_jax.io import save_audio, save_image
    from vasa_jax.pipeline import load_pipeline

    online_steps = [int(steps) for steps in args.online_steps.split(",") if steps]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(args.checkpoint)
    rows = []
    for n in range(args.clips):
        clip = toyworld.make_clip(100 + n, identity=toyworld.HELDOUT_IDENTITIES[n], seconds=args.seconds, size=128)
        real = clip.write(out / f"real_{n}.mp4")
        speech = out / f"speech_{n}.wav"
        save_audio(speech, clip.audio, clip.sample_rate)
        portrait = out / f"portrait_{n}.png"
        save_image(portrait, clip.frames[0])
        row = {"clip": n, "real": evaluate(real, speech, args.checkpoint)}
        modes = {"driven": {"drive": str(real)}, "offline": {}, "online": {"online": True}}
        modes.update({f"online_{steps}": {"online": True, "steps": steps} for steps in online_steps})
        for mode, options in modes.items():
            video = out / f"{mode}_{n}.mp4"
            # crop=False: the toy frame is already the face model's framing (dlib misses some 128-px toy faces).
            pipeline.write(video, str(portrait), str(speech), overwrite=True, size=args.size, crop=False,
                           seed=n, watermark=False, **options)
            row[mode] = evaluate(video, speech, args.checkpoint)
        print(json.dumps(row), flush=True)
        rows.append(row)

    def mean(kind, key):
        values = [r[kind][key] for r in rows if r[kind][key] is not None]
        return float(np.mean(values)) if values else None

    means = {kind: {key: mean(kind, key) for key in ("sync", "delta_p")} for kind in rows[0] if kind != "clip"}
    print(json.dumps({"checkpoint": args.checkpoint, "clips": len(rows), "means": means}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
