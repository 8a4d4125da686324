"""LivePortrait weights for the pipeline and training tests: a converted folder of the tiny config (random
init), rendering several times faster than the upstream-width reference in tests/data (whose SPADE widths
upstream fixes)."""

from pathlib import Path

import jax

from vasa_jax.face.liveportrait.config import tiny
from vasa_jax.face.liveportrait.model import LivePortrait, save_converted


def tiny_liveportrait(folder) -> Path:
    """Writes a converted LivePortrait folder of tiny() networks with random weights; returns it."""
    folder = Path(folder)
    save_converted(jax.tree.map(lambda x: jax.device_get(x), LivePortrait(tiny()).init(jax.random.key(0))), tiny(),
                   folder)
    return folder
