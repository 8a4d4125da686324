"""Framing a portrait for the face model: find the face, crop it as preprocessing crops training frames.

Sampling must show the model a face framed the way its training frames were, so the crop is the project's one
crop rule (vasa_jax.data.faces: dlib's detector and 68 landmarks, crop_box, crop_image), not a second one.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from vasa_jax.io import MediaError, load_image

MIN_SIDE = 64  # pixels: smaller images hold too little of a face to crop or detect


class NoFaceError(MediaError):
    """The image shows no face the detector finds."""


@dataclasses.dataclass(frozen=True)
class Portrait:
    """A portrait ready for the face model."""

    image: np.ndarray  # [S, S, 3] uint8 at the model's image size, framed like its training frames
    source: str | None  # the file it came from (None for an array)
    faces: int  # faces found (0 when not cropped); the largest is the one used
    box: tuple[float, float, float, float] | None  # the crop (centre x, centre y, side) in source pixels
    paste: object | None = None  # frames [B, S', S', 3] uint8 at the model's output -> the whole photo's frames
    landmarks: np.ndarray | None = None  # dlib's 68 points [68, 2] of the face, in source pixels (when cropped)


def load_portrait_image(image) -> tuple[np.ndarray, str | None]:
    """(RGB uint8 [H, W, 3], file name or None) from a path or array, checked for size; MediaError if unusable."""
    source = str(image) if isinstance(image, (str, os.PathLike)) else None
    rgb = load_image(image)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise MediaError(source, f"image is {width}x{height} pixels; a portrait needs at least {MIN_SIDE} pixels "
                                 "on each side")
    return rgb, source


def center_square(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of an RGB uint8 image, resized to [size, size, 3] (for --no-crop)."""
    height, width = image.shape[:2]
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    square = Image.fromarray(np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side]))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square)


class Framer:
    """Crops faces for a model of a given image size; the dlib models load on first use."""

    def __init__(self, size: int):
        self.size = size
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:
            from vasa_jax.data.faces import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def face_box(self, image: np.ndarray, source: str | None) -> tuple[np.ndarray, int]:
        """(crop box (cx, cy, side), number of faces) of the largest face; NoFaceError if there is none.

        Detection runs on a copy whose shorter side is the detector's detect_size (FaceDetector), so a huge
        photo costs no more to search than a small one. Both dlib detectors run, so several faces are counted.
        """
        from vasa_jax.data.faces import crop_box

        points, faces = self.face_landmarks(image, source)
        return crop_box(points), faces

    def face_landmarks(self, image: np.ndarray, source: str | None) -> tuple[np.ndarray, int]:
        """(dlib's 68 landmarks [68, 2] of the largest face, number of faces); NoFaceError if there is none."""
        boxes = self.detector.detect(image, both=True)
        if len(boxes) == 0:
            raise NoFaceError(source, "no face found; use a photo with one clearly visible face, or --no-crop "
                                      "(crop=False) for an image that is already a face crop")
        return self.detector.landmarks(image, boxes[0]), len(boxes)

    def crop(self, image: np.ndarray, box) -> np.ndarray:
        from vasa_jax.data.faces import crop_image

        return crop_image(image, box, self.size)

    def portrait(self, image, *, crop: bool = True) -> Portrait:
        """A Portrait from a path or array: the largest face cropped (crop=True), or the centred square resized."""
        if isinstance(image, Portrait):
            if image.image.shape != (self.size, self.size, 3):
                raise ValueError(f"this Portrait is {image.image.shape}; the model takes [{self.size}, {self.size}, 3]")
            return image
        rgb, source = load_portrait_image(image)
        if not crop:
            return Portrait(center_square(rgb, self.size), source, 0, None)
        from vasa_jax.data.faces import crop_box

        points, faces = self.face_landmarks(rgb, source)
        box = crop_box(points)
        return Portrait(self.crop(rgb, box), source, faces, tuple(float(v) for v in box), landmarks=points)
