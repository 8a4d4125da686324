"""Framing as LivePortrait frames a face, and pasting the animated crop back into the whole photo.

The crop rule is upstream's (its crop config: scale 2.3, vertical offset -0.125 of the crop side, rotated so
the eyes-to-mouth axis is upright), computed from the project's dlib 68 landmarks instead of upstream's own
landmark model: two points, the eye centre and the mouth centre, give the face's axis; the landmarks' extent
along it, squared and scaled, gives the side. The crop is a similarity transform, so pasting back is its
inverse: every frame of the 512 crop is warped into the photo in one jitted resampling, blended with a
feathered mask that fades the crop's border into the photo.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from vasa_jax.ops import grid_sample
from vasa_jax.pipeline.portrait import Framer, Portrait, load_portrait_image

CROP_SCALE = 2.3
CROP_OFFSET_Y = -0.125  # of the crop side, along the face's downward axis: negative shows more forehead
CROP_SIZE = 512
FEATHER = 0.1  # of the crop side: width of the mask's fade to the photo
MAX_PASTE_SIDE = 1920  # pixels: the pasted-back video's longer side at most


def crop_matrix(landmarks: np.ndarray, size: int = CROP_SIZE, *, scale: float = CROP_SCALE,
                offset_y: float = CROP_OFFSET_Y) -> np.ndarray:
    """float64 [3, 3] taking photo pixels (x, y, 1) to crop pixels of a size x size crop, from dlib's 68 points."""
    points = np.asarray(landmarks, np.float64)
    eyes = points[[36, 39, 42, 45]].mean(0)  # eye corners: the eyes' centre
    mouth = (points[48] + points[54]) / 2
    down = mouth - eyes
    length = np.linalg.norm(down)
    down = down / length if length > 1e-3 else np.array([0.0, 1.0])
    right = np.array([down[1], -down[0]])
    axes = np.stack([right, down])  # rows: the face's x and y axes in photo coordinates
    centre0 = points.mean(0)
    local = (points - centre0) @ axes.T
    low, high = local.min(0), local.max(0)
    side = (high - low).max() * scale
    centre = centre0 + axes.T @ ((low + high) / 2) + down * offset_y * side
    s = size / side
    linear = s * axes  # photo offset -> crop offset
    m = np.eye(3)
    m[:2, :2] = linear
    m[:2, 2] = size / 2 - linear @ centre
    return m


def crop_photo(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The crop [size, size, 3] uint8 of an RGB photo under crop_matrix (bilinear; outside repeats the edge)."""
    inverse = np.linalg.inv(matrix)  # PIL's affine maps output pixels to input pixels
    pad = size  # generous edge padding, so the crop never reads outside
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    shift = np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1]], np.float64)
    # Pixel centres: PIL samples output pixel (i, j) at its centre (i + 0.5), matching continuous coordinates.
    coefficients = (shift @ inverse)[:2].reshape(-1)
    out = Image.fromarray(padded).transform((size, size), Image.AFFINE, tuple(coefficients), Image.BILINEAR)
    return np.asarray(out)


def feather_mask(size: int, feather: float = FEATHER) -> np.ndarray:
    """float32 [size, size]: 1 inside, falling to 0 at the crop's border over `feather` of its side (smoothstep)."""
    u = (np.arange(size) + 0.5) / size
    edge = np.minimum(u, 1 - u) / feather
    ramp = np.clip(edge, 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return (ramp[:, None] * ramp[None, :]).astype(np.float32)


def paste_size(height: int, width: int, limit: int = MAX_PASTE_SIDE) -> tuple[int, int]:
    """(height, width) of the pasted-back video: the photo's, shrunk to `limit` on its longer side, even."""
    factor = min(1.0, limit / max(height, width))
    return max(2, int(height * factor) // 2 * 2), max(2, int(width * factor) // 2 * 2)


class PasteBack:
    """Puts animated crops back into the photo: frames uint8 [B, S, S, 3] -> [B, H, W, 3] at paste_size.

    matrix: crop_matrix at CROP_SIZE; crop_size: the side S of the frames pasted (the crop scaled to it)."""

    def __init__(self, photo: np.ndarray, matrix: np.ndarray, crop_size: int):
        height, width = photo.shape[:2]
        self.height, self.width = paste_size(height, width)
        # Output pixel -> photo pixel (the output may be a shrunk photo) -> crop pixel, in crop_size units.
        to_photo = np.diag([width / self.width, height / self.height, 1.0])
        to_crop = np.diag([crop_size / CROP_SIZE, crop_size / CROP_SIZE, 1.0]) @ matrix @ to_photo
        ys, xs = np.mgrid[0:self.height, 0:self.width] + 0.5
        points = np.stack([xs, ys, np.ones_like(xs)], -1) @ to_crop.T
        # grid_sample with align_corners=False: -1 and +1 are the crop's outer edges.
        grid = (points[..., :2] / crop_size * 2 - 1).astype(np.float32)
        background = np.asarray(Image.fromarray(photo).resize((self.width, self.height), Image.BICUBIC))
        mask = np.asarray(grid_sample(jnp.asarray(feather_mask(crop_size))[None, :, :, None], jnp.asarray(grid)[None]))
        self._grid = jnp.asarray(grid)
        self._mask = jnp.asarray(mask[0])
        self._background = jnp.asarray(background, jnp.float32)

    def __call__(self, frames):
        return _paste(jnp.asarray(frames), self._grid, self._mask, self._background)


@jax.jit
def _paste(frames, grid, mask, background):
    b = frames.shape[0]
    warped = grid_sample(frames.astype(jnp.float32), jnp.broadcast_to(grid, (b,) + grid.shape))
    out = mask * warped + (1 - mask) * background
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


class LivePortraitFramer(Framer):
    """Portraits framed as LivePortrait frames them, with what pasting the animation back into the photo needs.

    size: the model's input side (256); output_size: the side of the frames it renders (512), which paste-back
    takes. The crop is made at CROP_SIZE and reduced to `size`, as upstream does.
    """

    def __init__(self, size: int, output_size: int):
        super().__init__(size)
        self.output_size = output_size

    def face_box(self, image: np.ndarray, source: str | None):
        """(crop_matrix of the largest face, number of faces): what crop() takes, e.g. for a driving video."""
        points, faces = self.face_landmarks(image, source)
        return crop_matrix(points, CROP_SIZE), faces

    def crop(self, image: np.ndarray, box) -> np.ndarray:
        framed = Image.fromarray(crop_photo(image, box, CROP_SIZE))
        return np.asarray(framed.resize((self.size, self.size), Image.BOX) if self.size != CROP_SIZE else framed)

    def portrait(self, image, *, crop: bool = True) -> Portrait:
        if isinstance(image, Portrait) or not crop:
            return super().portrait(image, crop=crop)
        rgb, source = load_portrait_image(image)
        points, faces = self.face_landmarks(rgb, source)
        matrix = crop_matrix(points, CROP_SIZE)
        framed = self.crop(rgb, matrix)
        side = CROP_SIZE / np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
        centre = np.linalg.inv(matrix)[:2] @ np.array([CROP_SIZE / 2, CROP_SIZE / 2, 1.0])
        paste = PasteBack(rgb, matrix, self.output_size)
        return Portrait(framed, source, faces, (float(centre[0]), float(centre[1]), float(side)), paste,
                        landmarks=points)
