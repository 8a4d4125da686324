"""Face detection, 68-point landmarks and the project's face crop: one framing for training and inference.

Preprocessing crops training video with these functions, and sampling crops a user's portrait with the same
ones, so that a model sees faces framed alike in both. Detection and landmarks are dlib's, with the weights
that the face_recognition_models package ships (read from its folder; nothing downloads at run time).

    detector = FaceDetector()
    boxes = detector.detect(image)             # [K, 4] float32 (x0, y0, x1, y1), largest first
    points = detector.landmarks(image, boxes[0])  # [68, 2] float32 (x, y), iBUG 300-W order
    cx, cy, side = crop_box(points)            # the square crop around that face
    face = crop_image(image, (cx, cy, side), 512)

The crop rule is calibrated on the toy world: a toy frame rendered at the toy world's own framing (head at
nominal distance, centred) gives a crop close to the whole frame (see CROP_SCALE, CROP_OFFSET), so models
trained on toy frames and on preprocessed real video see the same framing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from vasa_jax.errors import ConfigError

# Weights inside face_recognition_models/models/. The package's own __init__ is not imported: it needs
# pkg_resources, which current setuptools no longer ships.
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"

DETECT_SIZE = 256  # images are resized so their shorter side is this many pixels before detection
# The CNN (MMOD) detector's boxes are ~11 % smaller than the HOG detector's on the same face (measured here on
# toy-world frames where both fire: width ratio 0.89 +- 0.08). The shape predictor was trained on HOG boxes,
# so CNN boxes are enlarged by this factor about their centre before they are used.
CNN_TO_HOG_SCALE = 1.12

# 68-point (iBUG 300-W) index ranges the crop rule uses.
_LEFT_EYE = slice(36, 42)  # the eye on the image's left in a frontal face
_RIGHT_EYE = slice(42, 48)
_MOUTH_CORNERS = [48, 54]  # corners, not the whole mouth: its centre drops as the jaw opens

# The crop: side = CROP_SCALE * face_scale, centre = eye midpoint + CROP_OFFSET * (mouth - eye midpoint), with
# mouth the midpoint of the mouth corners (the whole mouth's centre follows the jaw: on toy clips its distance
# to the eyes varies twice as much over a clip) and face_scale = max(|eye_r - eye_l|, |mouth - eye midpoint|),
# robust to yaw (which shortens the eye distance) and pitch (which shortens the eye-to-mouth distance).
# Calibrated with calibrate_crop on 36 toy-world identities rendered at the toy world's own framing (neutral
# state: frontal, centred, nominal distance) at 256 px: the whole frame corresponds to scale 4.45 (median;
# 10-90 % of identities 4.0-4.9) and offset 0.25 (0.20-0.33). FFHQ's alignment, for comparison, is ~4 eye
# distances wide: real portraits cropped with these constants are framed much like toy frames.
CROP_SCALE = 4.45
CROP_OFFSET = 0.25


def model_file(name: str) -> Path:
    """The path of a dlib weights file shipped by face_recognition_models; ConfigError if it is missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"face detection needs {name} from the face_recognition_models package, which is not "
                          "installed (pip install face_recognition_models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise ConfigError(f"{path}: not found; reinstall face_recognition_models (it ships {name})")
    return path


class FaceDetector:
    """dlib's HOG frontal-face detector, its CNN (MMOD) detector where HOG finds nothing, and the 68-point
    shape predictor.

    On toy-world faces HOG finds 25-75 % (by identity), the CNN 85-95 %, the two together ~95-98 % (measured
    here on 60-240 frames); HOG is ~25x cheaper, so it runs first. Detection works on a copy resized so its
    shorter side is `detect_size` pixels (bounded cost for any video size); boxes come back in the given
    image's coordinates. HOG upsamples once (faces down to ~40 px at the detection size), the CNN does not
    (faces down to ~80 px).
    """

    def __init__(self, *, detect_size: int = DETECT_SIZE, use_cnn: bool = True):
        import dlib

        if detect_size < 64:
            raise ConfigError(f"detect_size must be >= 64 pixels, got {detect_size}")
        self.detect_size = int(detect_size)
        self._hog = dlib.get_frontal_face_detector()
        self._cnn = dlib.cnn_face_detection_model_v1(str(model_file(CNN_DETECTOR_FILE))) if use_cnn else None
        self._shape = dlib.shape_predictor(str(model_file(LANDMARKS_FILE)))
        self._rectangle = dlib.rectangle

    def detect(self, image: np.ndarray, *, both: bool = False) -> np.ndarray:
        """Faces in an RGB uint8 [H, W, 3] image: float32 [K, 4] boxes (x0, y0, x1, y1), largest first.

        both=False: the CNN runs only where HOG finds nothing. both=True: both run and their boxes are merged
        (a CNN box overlapping a HOG box by IoU > 0.3 is the same face): slower, but it misses fewer of several
        faces, so it is what counting faces should use.
        """
        image = np.asarray(image)
        height, width = image.shape[:2]
        factor = self.detect_size / min(height, width)
        small = image
        if factor != 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in self._hog(small, 1)]
        if (both or not boxes) and self._cnn is not None:
            hog = np.asarray(boxes, np.float64).reshape(-1, 4)
            for d in self._cnn(small, 0):
                r = d.rect
                cx, cy = (r.left() + r.right() + 1) / 2, (r.top() + r.bottom() + 1) / 2
                half = 0.5 * CNN_TO_HOG_SCALE * np.array([r.right() + 1 - r.left(), r.bottom() + 1 - r.top()])
                box = (cx - half[0], cy - half[1], cx + half[0], cy + half[1])
                if not np.any(_iou(np.asarray(box), hog) > 0.3):
                    boxes.append(box)
        out = np.asarray(boxes, np.float32).reshape(-1, 4) / factor
        area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
        return out[np.argsort(-area, kind="stable")]

    def landmarks(self, image: np.ndarray, box) -> np.ndarray:
        """The 68 landmarks float32 [68, 2] (x, y pixels) of the face in `box` (x0, y0, x1, y1).

        An image whose shorter side exceeds detect_size is shrunk to it first (the shape predictor samples
        single pixels, which steadies on a face of ~100-200 px; it is never enlarged)."""
        image = np.asarray(image)
        height, width = image.shape[:2]
        factor = min(1.0, self.detect_size / min(height, width))
        if factor != 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        x0, y0, x1, y1 = (int(round(float(v) * factor)) for v in box)
        shape = self._shape(image, self._rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32) / factor


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box [4] with boxes [K, 4] (x0, y0, x1, y1)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return w * h / (area(box) + area(boxes) - w * h)


def face_measures(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eye midpoint [..., 2], eye-to-mouth vector [..., 2], face_scale [...]) from landmarks [..., 68, 2]."""
    points = np.asarray(landmarks, np.float64)
    eye_l = points[..., _LEFT_EYE, :].mean(-2)
    eye_r = points[..., _RIGHT_EYE, :].mean(-2)
    mouth = points[..., _MOUTH_CORNERS, :].mean(-2)
    eyes = (eye_l + eye_r) / 2
    eye_to_mouth = mouth - eyes
    scale = np.maximum(np.linalg.norm(eye_r - eye_l, axis=-1), np.linalg.norm(eye_to_mouth, axis=-1))
    return eyes, eye_to_mouth, scale


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Lip opening [...] from landmarks [..., 68, 2]: the mean gap between the inner lips (points 61-63 against
    67-65) over the face scale (face_measures), so it does not change with the face's size in the picture."""
    points = np.asarray(landmarks, np.float64)
    gap = np.linalg.norm(points[..., [61, 62, 63], :] - points[..., [67, 66, 65], :], axis=-1).mean(-1)
    return (gap / np.maximum(face_measures(points)[2], 1e-6)).astype(np.float32)


def crop_box(landmarks: np.ndarray, *, scale: float = CROP_SCALE, offset: float = CROP_OFFSET) -> np.ndarray:
    """The square crop of a face: float32 [..., 3] (centre x, centre y, side) in pixels, from landmarks
    [..., 68, 2]. Axis-aligned: head roll stays in the picture (it is part of the pose a model learns)."""
    eyes, eye_to_mouth, face_scale = face_measures(landmarks)
    centre = eyes + offset * eye_to_mouth
    return np.concatenate([centre, scale * face_scale[..., None]], -1).astype(np.float32)


def crop_image(image: np.ndarray, box, size: int) -> np.ndarray:
    """The square `box` (centre x, centre y, side) of an RGB uint8 [H, W, 3] image, resized to uint8
    [size, size, 3] with sub-pixel placement. Parts outside the image repeat its edge pixels."""
    image = np.asarray(image)
    cx, cy, side = (float(v) for v in box)
    height, width = image.shape[:2]
    x0, y0 = cx - side / 2, cy - side / 2
    x1, y1 = x0 + side, y0 + side
    pad = int(np.ceil(max(0.0, -x0, -y0, x1 - width, y1 - height))) + 1
    if pad > 1:
        image = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    else:
        pad = 0
    out = Image.fromarray(image).resize((size, size), Image.BICUBIC, box=(x0 + pad, y0 + pad, x1 + pad, y1 + pad))
    return np.asarray(out)


def smooth_track(values: np.ndarray, *, median: int, sigma: float) -> np.ndarray:
    """A robust temporal smoother: float32 [T, C] -> [T, C].

    A running median over `median` frames (odd; removes landmark outliers shorter than half the window),
    then a Gaussian of `sigma` frames (removes jitter); both use the frames there are at the clip's ends (the
    window shrinks, nothing is padded). sigma = 0 skips the Gaussian.
    """
    values = np.asarray(values, np.float64)
    count = values.shape[0]
    radius = max(0, median // 2)
    out = np.empty_like(values)
    for t in range(count):
        out[t] = np.median(values[max(0, t - radius) : t + radius + 1], axis=0)
    if sigma > 0 and count > 1:
        reach = int(np.ceil(4 * sigma))
        kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) / sigma) ** 2)
        weight = np.convolve(np.ones(count), kernel)[reach : reach + count]
        out = np.stack([np.convolve(column, kernel)[reach : reach + count] for column in out.T], -1) / weight[:, None]
    return out.astype(np.float32)


def smooth_crop_boxes(boxes: np.ndarray, *, median: int, sigma: float) -> np.ndarray:
    """Per-frame crops float32 [T, 3] (centre x, centre y, side) -> a steady track of crops [T, 3].

    The centre and the log of the side are smoothed with smooth_track (log: a size change of x % weighs the
    same at any size)."""
    boxes = np.asarray(boxes, np.float64)
    track = np.concatenate([boxes[:, :2], np.log(boxes[:, 2:3])], axis=1)
    smooth = smooth_track(track, median=median, sigma=sigma).astype(np.float64)
    return np.concatenate([smooth[:, :2], np.exp(smooth[:, 2:3])], axis=1).astype(np.float32)


def calibrate_crop(frames: np.ndarray, landmarks: np.ndarray) -> dict:
    """What the crop rule's constants would have to be for crops to fill whole frames.

    frames: [N, S, S, 3] square frames at the wanted framing (toy-world renders); landmarks [N, 68, 2] of
    their faces. Returns medians over the frames: scale (frame side / face_scale) and offset (how far along
    eye-to-mouth the frame centre lies), plus the crop that the current constants give, relative to the frame
    (side_ratio = crop side / frame side; centre_error = (crop centre - frame centre) / frame side).
    """
    side = frames.shape[1]
    eyes, eye_to_mouth, face_scale = face_measures(landmarks)
    centre = np.array([side / 2, side / 2])
    along = ((centre - eyes) * eye_to_mouth).sum(-1) / (eye_to_mouth**2).sum(-1)
    box = crop_box(landmarks)
    return {
        "scale": float(np.median(side / face_scale)),
        "offset": float(np.median(along)),
        "side_ratio": float(np.median(box[:, 2] / side)),
        "centre_error": np.median((box[:, :2] - centre) / side, axis=0).tolist(),
    }
