"""Marking a video as it is written: the watermark into every frame batch, the signed manifest into the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vasa_jax.provenance import manifest
from vasa_jax.provenance.credentials import load_credential
from vasa_jax.provenance.watermark import embed


class ProvenanceMarker:
    """The provenance marks of one video being written to `path`.

        marker = ProvenanceMarker(path)                      # loads (or makes) the signing credential now
        with VideoWriter(path, ..., finish=marker.finish) as w:
            w.write(marker.frames(frames))                    # every batch, as it is written

    enabled=False (research use): neither mark; frames pass unchanged and the file is not signed. A container
    that cannot hold a C2PA manifest (.mkv) gets the watermark only, with a warning.
    """

    def __init__(self, path, *, enabled: bool = True):
        self.enabled = enabled
        self._mime = manifest.mime_type(path)
        self._credential = None
        if enabled and self._mime is None:
            warnings.warn(f"{path}: {Path(path).suffix} files cannot carry a C2PA manifest; the video is marked by "
                          "its watermark only (write .mp4 or .mov for both)", stacklevel=3)
        elif enabled:
            self._credential = load_credential()  # a credential that cannot sign fails before any generation

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames [n, H, W, 3] as they go into the file: watermarked unless disabled."""
        return embed(frames) if self.enabled else frames

    @property
    def finish(self):
        """For VideoWriter(finish=...): signs the finished file before it is moved into place; None if unsigned."""
        if self._credential is None:
            return None
        return lambda path: manifest.sign_in_place(path, self._credential, mime=self._mime, watermarked=True)
