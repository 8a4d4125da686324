"""Image loading: any file Pillow reads (or an array) -> RGB uint8 [H, W, 3]."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vasa_jax.io.errors import MediaError, check_readable_file

# Transparent pixels are composited on mid grey: it biases neither a light nor a dark background.
NEUTRAL_BACKGROUND = (128, 128, 128)


def load_image(source, *, background=NEUTRAL_BACKGROUND) -> np.ndarray:
    """Returns RGB uint8 [H, W, 3] from a path, a PIL image or an array.

    RGBA / LA / palette-with-transparency are composited on `background`; palette, greyscale, CMYK and
    16-bit or float images are converted; EXIF orientation is applied (phone photos).
    Arrays: uint8 or float in [0, 1], shaped [H, W], [H, W, 1], [H, W, 3] or [H, W, 4].
    """
    if isinstance(source, (str, os.PathLike)):
        path = check_readable_file(source)
        try:
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)
                img.load()
        except UnidentifiedImageError:
            raise MediaError(path, "is not an image Pillow can read") from None
        except Image.DecompressionBombError:  # Pillow's guard against images made to exhaust memory
            raise MediaError(path, f"image is too large to load safely (over {2 * Image.MAX_IMAGE_PIXELS} "
                                   "pixels)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise MediaError(path, f"image data is truncated or corrupt ({e})") from None
        rgb = _pil_to_rgb(img, background)
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise MediaError(path, "image has zero width or height")
        return rgb
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, background)
    return _array_to_rgb(np.asarray(source), background)


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes an RGB uint8 [H, W, 3] image; the format follows the file extension."""
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)


def _pil_to_rgb(img: Image.Image, background) -> np.ndarray:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _array_to_rgb(_high_depth_to_uint8(np.asarray(img)), background)
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        return _array_to_rgb(np.asarray(img.convert("RGBA")), background)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _high_depth_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit integer or float greyscale -> uint8, scaling by the range the dtype implies."""
    values = values.astype(np.float64)
    peak = values.max() if values.size else 0.0
    if peak <= 1.0:  # float images in [0, 1]
        scale = 255.0
    elif peak <= 255.0:
        scale = 1.0
    else:  # 16-bit data (Pillow reads 16-bit PNG greyscale as mode I)
        scale = 255.0 / 65535.0
    return np.clip(np.round(values * scale), 0, 255).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray, background) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise MediaError(None, f"an image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MediaError(None, f"the image array is empty (shape {arr.shape})")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise MediaError(None, f"an image array must be uint8 or float in [0, 1]; got {arr.dtype}")
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255.0
        bg = np.asarray(background, np.float32)
        out = arr[..., :3].astype(np.float32) * alpha + bg * (1.0 - alpha)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)
