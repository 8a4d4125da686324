"""python -m vasa_jax.eval: the metrics of one talking-face video (vasa_jax.eval.evaluate)."""

import sys

from vasa_jax.eval.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
