"""Command line of the toy world.

  python -m vasa_jax.data.toyworld clips --out DIR [--count 8] [--seconds 4] [--size 256] [--split train]
      writes talking-face clips as mp4 (H.264 + AAC) with <name>.truth.npz ground truth beside each
  python -m vasa_jax.data.toyworld sheet --out identities.png [--count 24] [--size 128]
      a contact sheet of identities, to see what the world looks like
  python -m vasa_jax.data.toyworld bench [--sizes 64 128 256] [--seconds 8] [--json out.json]
      frames per second of make_clip on one CPU core
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vasa_jax.data.toyworld.clip import make_clip, perform
from vasa_jax.data.toyworld.identity import HELDOUT_IDENTITIES, sample_identity
from vasa_jax.data.toyworld.render import render
from vasa_jax.io import save_image


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


def identities_for(split: str, count: int, first: int) -> list[int]:
    if split == "heldout":
        if first + count > len(HELDOUT_IDENTITIES):
            raise UsageError(f"the held-out split has {len(HELDOUT_IDENTITIES)} identities; "
                             f"asked for {count} from index {first}")
        return list(HELDOUT_IDENTITIES[first : first + count])
    return list(range(first, first + count))


def write_clips(args) -> None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    ids = identities_for(args.split, args.count, args.first)
    names = [out / f"{args.split}_id{identity}_seed{args.first + i}.mp4" for i, identity in enumerate(ids)]
    clash = [str(p) for p in names if p.exists() or p.with_suffix(".truth.npz").exists()]
    if clash and not args.overwrite:
        raise UsageError(f"{clash[0]}: already exists ({len(clash)} clip(s) would be overwritten; "
                         "pass --overwrite to replace them)")
    for i, (identity, path) in enumerate(tqdm(list(zip(ids, names)), disable=args.quiet, unit="clip")):
        make_clip(args.first + i, identity=identity, seconds=args.seconds, size=args.size).write(path)
    if not args.quiet:
        print(f"wrote {len(names)} clips to {out}")


def write_sheet(args) -> None:
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"{out}: the sheet is an image; use a .png or .jpg name")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: already exists (pass --overwrite to replace it)")
    cols = min(args.count, 8)
    rows = -(-args.count // cols)
    sheet = np.full((rows * args.size, cols * args.size, 3), 255, np.uint8)
    ids = identities_for(args.split, args.count, args.first)
    for k, identity in enumerate(ids):
        # One frame from the middle of a clip: a natural pose and expression.
        _, truth = perform(k, identity=identity, seconds=1.0, audio=False)
        state = {key: value[12:13] for key, value in truth.items()}
        r, c = divmod(k, cols)
        sheet[r * args.size : (r + 1) * args.size, c * args.size : (c + 1) * args.size] = render(
            sample_identity(identity), state, args.size, supersample=2)[0]
    save_image(out, sheet)
    if not args.quiet:
        print(f"wrote {out}")


def bench(args) -> None:
    """Frames per second of the whole clip generator (speech, tracks, rendering, landmarks) on one core."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    results = {"cpu_cores": 1, "seconds_per_clip": args.seconds, "clips": args.clips, "sizes": {}}
    make_clip(0, identity=0, seconds=0.2, size=64)  # warm caches and lazy imports
    for size in args.sizes:
        frames, elapsed = 0, 0.0
        for k in range(args.clips):
            start = time.perf_counter()
            clip = make_clip(1000 + k, identity=k, seconds=args.seconds, size=size)
            elapsed += time.perf_counter() - start
            frames += clip.num_frames
        results["sizes"][size] = {"frames_per_second": frames / elapsed, "frames": frames, "seconds": elapsed}
        print(f"{size:4d} px: {frames / elapsed:7.1f} frames/s on one core ({frames} frames in {elapsed:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_jax.data.toyworld", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    clips = sub.add_parser("clips", help="write clips as mp4 + ground truth")
    clips.add_argument("--out", required=True, help="output folder")
    clips.add_argument("--count", type=int, default=8)
    clips.add_argument("--seconds", type=float, default=4.0)
    clips.add_argument("--size", type=int, default=256)
    clips.add_argument("--split", choices=("train", "heldout"), default="train")
    clips.add_argument("--first", type=int, default=0, help="first identity index (and clip seed)")
    sheet = sub.add_parser("sheet", help="contact sheet of identities")
    sheet.add_argument("--out", required=True)
    sheet.add_argument("--count", type=int, default=24)
    sheet.add_argument("--size", type=int, default=128)
    sheet.add_argument("--split", choices=("train", "heldout"), default="train")
    sheet.add_argument("--first", type=int, default=0)
    for p in (clips, sheet):
        p.add_argument("--overwrite", action="store_true", help="replace existing files")
        p.add_argument("--quiet", action="store_true")
    b = sub.add_parser("bench", help="frames per second on one CPU core")
    b.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    b.add_argument("--seconds", type=float, default=8.0)
    b.add_argument("--clips", type=int, default=3)
    b.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    for name in ("count", "size", "seconds", "clips"):
        if getattr(args, name, 1) <= 0:
            parser.error(f"--{name} must be positive")
    if getattr(args, "size", 64) < 16 or max(getattr(args, "sizes", [64])) > 1024 or min(getattr(args, "sizes", [64])) < 16:
        parser.error("sizes must be in [16, 1024]")
    if getattr(args, "first", 0) < 0:
        parser.error("--first must be >= 0")
    try:
        {"clips": write_clips, "sheet": write_sheet, "bench": bench}[args.command](args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
