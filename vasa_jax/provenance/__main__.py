"""python -m vasa_jax.provenance check FILE... [--json] | bench [...] (vasa_jax.provenance)."""

from __future__ import annotations

import argparse
import json
import sys

from vasa_jax.cli import OneLineParser
from vasa_jax.provenance.check import MAX_FRAMES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m vasa_jax.provenance", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    check = commands.add_parser("check", help="look for vasa-jax's C2PA manifest and watermark in videos; exit 0 "
                                              "if every video carries one, 1 if one does not, 2 for bad input")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="a JSON list, one object per file")
    check.add_argument("--max-frames", type=_positive_int, default=MAX_FRAMES,
                       help=f"frames read per video (default {MAX_FRAMES})")
    bench = commands.add_parser("bench", help="robustness, false positives, invisibility and cost of the marks")
    bench.add_argument("--sizes", type=lambda text: [_positive_int(v) for v in text.split(",")], default=[256, 512],
                       help="frame sides of the generated videos (default 256,512)")
    bench.add_argument("--seconds", type=float, default=3.0, help="length of each video (default 3)")
    bench.add_argument("--json", help="also write the figures here")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return e.code
    from vasa_jax.errors import ConfigError
    from vasa_jax.io import MediaError

    try:
        if args.command == "bench":
            from vasa_jax.provenance.bench import run_bench

            return run_bench(sizes=args.sizes, seconds=args.seconds, json_path=args.json)
        return _check(args)
    except (MediaError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _check(args) -> int:
    from vasa_jax.provenance.check import check_inputs, check_video, describe

    reports = [check_video(path, max_frames=args.max_frames) for path in check_inputs(args.files)]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n".join(describe(r) for r in reports))
    return 0 if all(r["found"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
