"""Metrics of one talking-face video: `python -m vasa_jax.eval --video generated.mp4 [...]`.

  python -m vasa_jax.eval --video gen.mp4 [--audio speech.wav] [--reference ref.mp4] [--portrait face.png]
                          [--face-workdir runs/face_toy] [--motion gen.motion.npy] [--capp runs/capp_toy]
                          [--truth clip.truth.npz] [--syncnet mod:fn] [--fid mod:fn] [--fvd mod:fn]
                          [--json metrics.json] [--plots DIR]

What is measured, and from what (every group needs only the inputs named; the JSON's not_computed says why a
group is missing):
  pose        Delta-P (mean |frame-to-frame change| of yaw, pitch, roll; degrees per frame) and pose statistics
              of the generated video, from poses re-extracted from its frames by a stage-1 face model
              (--face-workdir: the first three entries of encode_motion), or read from generated motion in the
              toy-truth layout (--motion [T, 12] .npy). The reference video's and the truth's alike.
  sync        the download-free lip-sync score: correlation of the mouth opening (dlib inner-lip landmarks) with
              the audio's RMS envelope at the best lag in +-5 frames, and that lag (positive: video late)
  identity    CSIM: cosine similarity of dlib face-recognition descriptors of generated frames with the portrait
              (--portrait), else with the reference video's frames (frame-paired)
  landmarks   LMD against the reference video (frame-paired; whole face and lip shape), in face sizes
  capp        CAPP of the audio and the generated pose (--capp DIR, trained with python -m vasa_jax.eval.capp);
              of the audio and the truth's pose as the reference level
  toy         exact metrics against toy-world truth (--truth): pose error, mouth-opening correlation, gaze error
  syncnet / fid / fvd   through networks the user supplies (vasa_jax/eval/hooks.py)
Audio is --audio, else the video's own track. Videos are taken at 25 fps (others are resampled by nearest frame).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from vasa_jax.cli import OneLineParser
from vasa_jax.errors import ConfigError
from vasa_jax.eval import hooks, signals
from vasa_jax.eval.toy import read_toy_motion, toy_metrics

FPS = 25


def read_frames(path) -> tuple[np.ndarray, np.ndarray | None]:
    """A video's frames at 25 fps (uint8 [T, H, W, 3]) and its audio track (16 kHz, or None)."""
    from vasa_jax.data.preprocess import resample_frames
    from vasa_jax.io import iter_video_frames, probe_video, read_video_audio

    fps = probe_video(path).fps
    frames = np.stack([frame for _, _, frame in resample_frames(iter_video_frames(path), fps, FPS)])
    return frames, read_video_audio(path)


def pose_reader(face, params, *, crop_with=None, batch: int = 16):
    """frames uint8 [T, H, W, 3] -> yaw, pitch, roll [T, 3] (degrees) through a face model's encode_motion
    (vasa_jax.face.model.FaceModel). Frames are resized to the model's image size (they should be framed as its
    training crops are), or, with crop_with (a FaceAnalyzer), first cropped around their faces as preprocessing
    crops training video."""
    import jax
    import jax.numpy as jnp
    from PIL import Image

    size = face.image_size
    encode = jax.jit(lambda p, x: face.encode_motion(p, x)[:, :3])

    def read(frames):
        if crop_with is not None:
            frames = crop_faces(frames, crop_with.track(frames), size)
        out = []
        for start in range(0, len(frames), batch):
            part = [f if f.shape[:2] == (size, size) else np.asarray(Image.fromarray(f).resize((size, size),
                                                                                             Image.BICUBIC))
                    for f in frames[start:start + batch]]
            x = np.zeros((batch, size, size, 3), np.float32)  # one shape: one compilation
            x[: len(part)] = np.stack(part) / 255.0
            out.append(np.asarray(encode(params, jnp.asarray(x)))[: len(part)])
        return np.concatenate(out).astype(np.float32)

    return read


def crop_faces(frames, track, size: int) -> np.ndarray:
    """Each frame's face cropped as preprocessing crops training video (smoothed square crops), to `size`."""
    from vasa_jax.data import faces

    boxes = faces.smooth_crop_boxes(faces.crop_box(track.landmarks), median=5, sigma=2.0)
    return np.stack([faces.crop_image(frame, box, size) for frame, box in zip(frames, boxes)])


def evaluate_video(frames, audio=None, *, reference=None, portrait=None, truth=None, motion=None, read_pose=None,
                   capp=None, analyzer=None, identity_frames: int = 16, max_lag: int = 5, syncnet=None, fid=None,
                   fvd=None, fvd_frames: int = 16):
    """All metrics the inputs allow, as (metrics dict, series for the plots).

    frames: generated uint8 [T, H, W, 3] at 25 fps; audio: 16 kHz [N] (sample 0 with frame 0) or None;
    reference: frames of a reference video, or None; portrait: an RGB uint8 image, or None; truth: toy-world
    truth dict; motion: generated motion [T, 12] in the toy-truth layout; read_pose: frames -> angles [T, 3]
    (pose_reader); capp: a Capp; analyzer: a face_metrics.FaceAnalyzer (None: no landmark or identity
    metrics); syncnet / fid / fvd: user-supplied networks (hooks)."""
    metrics = {"frames": int(len(frames)), "fps": FPS}
    skipped, series = {}, {"pose": {}, "mouth": {}}

    # Pose: the generated video's, a reference's, the truth's.
    pose = None
    if motion is not None:
        pose, pose_source = read_toy_motion(motion)["pose"][:, :3], "motion"
    elif read_pose is not None:
        pose, pose_source = read_pose(frames), "face_model"
    if pose is not None:
        metrics["pose"] = {"source": pose_source, **signals.pose_statistics(pose)}
        series["pose"]["generated"] = pose
    else:
        skipped["pose"] = "needs --face-workdir (poses re-extracted from the frames) or --motion"
    if reference is not None and read_pose is not None:
        series["pose"]["reference"] = read_pose(reference)
        metrics["pose_reference"] = signals.pose_statistics(series["pose"]["reference"])
    if truth is not None:
        from vasa_jax.data.toyworld import pose_vectors

        series["pose"]["truth"] = pose_vectors(truth)[:, :3]
        metrics["pose_truth"] = signals.pose_statistics(series["pose"]["truth"])

    # Landmarks: mouth opening, sync, LMD, CSIM.
    track = ref_track = None
    if analyzer is not None:
        from vasa_jax.eval import face_metrics as fm

        track = analyzer.track(frames, name="--video")
        metrics["face_found_fraction"] = float(track.detected.sum() / track.searched.sum())
        series["mouth"]["generated"] = fm.mouth_opening(track.landmarks)
        if reference is not None:
            ref_track = analyzer.track(reference, name="--reference")
            series["mouth"]["reference"] = fm.mouth_opening(ref_track.landmarks)
            t = min(len(frames), len(reference))
            metrics["landmarks"] = {**fm.landmark_distance(track.landmarks[:t], ref_track.landmarks[:t]),
                                    "frames": t}
        else:
            skipped["landmarks"] = "LMD needs --reference"
        index = fm.sample_frames(len(frames), identity_frames)
        if portrait is not None or ref_track is not None:
            if portrait is not None:
                anchor, against = analyzer.portrait(portrait, name="--portrait"), "portrait"
            else:
                index = index[index < len(reference)]
                anchor, against = analyzer.descriptors(reference, ref_track, index), "reference frames"
            sims = fm.identity_similarity(analyzer.descriptors(frames, track, index), anchor)
            metrics["identity"] = {"csim": float(sims.mean()), "csim_min": float(sims.min()), "against": against,
                                   "frames": int(len(index))}
        else:
            skipped["identity"] = "CSIM needs --portrait or --reference"
    else:
        skipped["landmarks"] = skipped["identity"] = "face analysis switched off (--no-faces)"
    if truth is not None:
        series["mouth"]["truth"] = np.asarray(truth["mouth_open"])
    if motion is not None:
        series["mouth"]["motion"] = read_toy_motion(motion)["mouth"]

    if audio is not None and len(frames) <= 2 * max_lag + 2:
        skipped["sync"] = f"the lag search over +-{max_lag} frames needs more than {2 * max_lag + 2} frames"
    elif audio is not None:
        series["envelope"] = signals.audio_envelope(audio, len(frames))
        mouth = series["mouth"].get("generated", series["mouth"].get("motion"))
        if mouth is not None:
            metrics["sync"] = {"mouth_source": "landmarks" if "generated" in series["mouth"] else "motion",
                               **signals.lip_sync(mouth, audio, max_lag=max_lag)}
        else:
            skipped["sync"] = "needs mouth opening: face analysis or --motion"
        if "reference" in series["mouth"]:
            metrics["sync_reference"] = signals.lip_sync(series["mouth"]["reference"], audio, max_lag=max_lag)
        if truth is not None:
            metrics["sync_truth"] = signals.lip_sync(series["mouth"]["truth"], audio, max_lag=max_lag)
    else:
        skipped["sync"] = "needs audio: --audio, or a video with an audio track"

    if capp is not None and audio is not None:
        features = capp.encoder.features(audio)
        metrics["capp"] = {}
        for name, angles in series["pose"].items():
            if min(len(angles), len(features)) >= capp.config.window:
                metrics["capp"][name] = capp.score_features(features, angles)["capp"]
        if "generated" not in metrics["capp"]:
            skipped["capp_generated"] = (f"needs a generated pose and audio of >= {capp.config.window} frames"
                                         if pose is not None else "needs a generated pose")
    else:
        skipped["capp"] = "needs --capp DIR and audio"

    if truth is not None:
        gaze = read_toy_motion(motion)["gaze"] if motion is not None else None
        mouth = series["mouth"].get("motion", series["mouth"].get("generated"))
        metrics["toy"] = toy_metrics(truth, pose=pose, mouth=mouth, gaze=gaze)
        if gaze is None:
            skipped["toy_gaze"] = "gaze is read from generated motion in the toy-truth layout (--motion) only"
    else:
        skipped["toy"] = "needs --truth (a toy clip's .truth.npz)"

    if syncnet is not None:
        metrics["syncnet"] = hooks.syncnet_metrics(syncnet, frames, audio if audio is not None else np.zeros(0))
    else:
        skipped["syncnet"] = "Sync-C / Sync-D need --syncnet module:function (vasa-jax ships no SyncNet)"
    for name, hook in (("fid", fid), ("fvd", fvd)):
        if hook is None:
            skipped[name] = f"needs --{name} module:function (vasa-jax ships no feature network)"
        elif reference is None:
            skipped[name] = "needs --reference"
        elif name == "fvd" and min(len(frames), len(reference)) < 2 * fvd_frames:
            skipped[name] = f"needs two clips of {fvd_frames} frames (--fvd-frames) in both videos"
        elif name == "fid":
            metrics["fid"] = hooks.fid(hook, frames, reference)
        else:
            metrics["fvd"] = hooks.fvd(hook, frames, reference, fvd_frames)
    metrics["not_computed"] = skipped
    return metrics, series


def write_plots(directory, series: dict) -> list[str]:
    """mouth.png (mouth openings and the audio envelope) and pose.png (trajectories) where there is data."""
    from vasa_jax.eval import plots

    os.makedirs(directory, exist_ok=True)
    written = []
    if series["mouth"]:
        written.append(plots.plot_mouth(os.path.join(directory, "mouth.png"), series["mouth"],
                                        envelope=series.get("envelope"), fps=FPS))
    if series["pose"]:
        written.append(plots.plot_pose(os.path.join(directory, "pose.png"), series["pose"], fps=FPS))
    return written


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m vasa_jax.eval", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", required=True, help="the generated video")
    parser.add_argument("--audio", help="the driving speech (default: the video's audio track)")
    parser.add_argument("--reference", help="a reference video for LMD, CSIM and comparisons (e.g. the real clip)")
    parser.add_argument("--portrait", help="the source portrait, the identity CSIM compares with")
    parser.add_argument("--face-workdir", help="a stage-1 workdir or face weights (a pipeline checkpoint, "
                        "LivePortrait's): re-extracts head poses from the frames")
    parser.add_argument("--crop-faces", action="store_true",
                        help="crop faces (the preprocessing framing) before the face model reads poses")
    parser.add_argument("--motion", help="generated motion [T, 12] .npy in the toy-truth layout")
    parser.add_argument("--capp", help="a CAPP model folder (python -m vasa_jax.eval.capp)")
    parser.add_argument("--truth", help="toy-world truth (<clip>.truth.npz) for the exact metrics")
    parser.add_argument("--no-faces", action="store_true", help="skip dlib (landmarks, sync, LMD, CSIM)")
    parser.add_argument("--detect-every", type=int, default=5, help="run the face detector on every k-th frame")
    parser.add_argument("--identity-frames", type=int, default=16, help="frames CSIM compares (spread evenly)")
    parser.add_argument("--max-lag", type=int, default=5, help="lip-sync lag search range, frames")
    parser.add_argument("--syncnet", help="module:function giving SyncNet embeddings (see vasa_jax/eval/hooks.py)")
    parser.add_argument("--fid", help="module:function giving per-frame features for FID")
    parser.add_argument("--fvd", help="module:function giving per-clip features for FVD")
    parser.add_argument("--fvd-frames", type=int, default=16, help="frames per FVD clip (VASA-1's FVD_25: 25)")
    parser.add_argument("--json", help="write the metrics here")
    parser.add_argument("--plots", help="folder for mouth.png and pose.png")
    args = parser.parse_args(argv)

    from vasa_jax.io import CheckpointError, MediaError, load_audio, load_image

    started = time.perf_counter()
    try:
        for option in ("video", "audio", "reference", "portrait", "motion", "truth"):
            path = getattr(args, option)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{path}: not found (--{option})")
        for option in ("face_workdir", "capp"):
            path = getattr(args, option)
            if path is not None and not os.path.isdir(path):
                raise ConfigError(f"{path}: not a folder (--{option.replace('_', '-')})")
        if args.detect_every < 1 or args.identity_frames < 1 or args.max_lag < 0 or args.fvd_frames < 1:
            raise ConfigError("--detect-every, --identity-frames and --fvd-frames must be >= 1, --max-lag >= 0")
        syncnet, fid, fvd = (hooks.load_hook(getattr(args, n), f"--{n}") if getattr(args, n) else None
                             for n in ("syncnet", "fid", "fvd"))
        frames, audio = read_frames(args.video)
        if args.audio:
            audio = load_audio(args.audio)
        reference = read_frames(args.reference)[0] if args.reference else None
        portrait = load_image(args.portrait) if args.portrait else None
        motion = None
        if args.motion:
            try:
                motion = np.load(args.motion)
                read_toy_motion(motion)
            except (OSError, ValueError) as e:
                raise ConfigError(f"{args.motion}: not usable as toy-truth motion ({e})") from None
        truth = None
        if args.truth:
            from vasa_jax.eval.toy import load_truth

            truth = load_truth(args.truth)
        capp = None
        if args.capp:
            from vasa_jax.eval.capp import Capp

            capp = Capp.load(args.capp)
        analyzer = None
        if not args.no_faces:
            from vasa_jax.eval.face_metrics import FaceAnalyzer

            analyzer = FaceAnalyzer(detect_every=args.detect_every)
        if args.crop_faces and analyzer is None:
            raise ConfigError("--crop-faces needs the face analysis (drop --no-faces)")
        read_pose = None
        if args.face_workdir:
            from vasa_jax.data.motion_data import load_face_folder

            face, params = load_face_folder(args.face_workdir)
            read_pose = pose_reader(face, params, crop_with=analyzer if args.crop_faces else None)
        metrics, series = evaluate_video(
            frames, audio, reference=reference, portrait=portrait, truth=truth, motion=motion, read_pose=read_pose,
            capp=capp, analyzer=analyzer, identity_frames=args.identity_frames, max_lag=args.max_lag,
            syncnet=syncnet, fid=fid, fvd=fvd, fvd_frames=args.fvd_frames)
    except (ConfigError, MediaError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = {"video": args.video, **metrics}
    if args.plots:
        metrics["plots"] = write_plots(args.plots, series)
    metrics["seconds"] = time.perf_counter() - started
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0
