"""Metrics that need networks vasa-jax does not ship: SyncNet's Sync-C / Sync-D, FID and FVD.

vasa-jax has no SyncNet, Inception or I3D weights (and downloads nothing), so these metrics take the network as
a callable the user supplies, named "package.module:function" on the command line:

  --syncnet  embed(frames uint8 [T, H, W, 3], audio float32 [N] at 16 kHz) -> (video [T', D], audio [T', D]):
             SyncNet's per-frame lip and audio embeddings, frame-aligned (syncnet_python's im_feat / cc_feat;
             face cropping is the callable's business). vasa-jax computes Sync-C / Sync-D from them as
             syncnet_python does (sync_scores).
  --fid      features(frames uint8 [N, H, W, 3]) -> [N, D] (Inception-v3 pool features for the standard FID)
  --fvd      features(clips uint8 [N, L, H, W, 3]) -> [N, D] (I3D logits for the standard FVD; L = --fvd-frames)
FID and FVD are the Frechet distance between the generated and the reference video's features. They need many
frames or clips for a stable covariance: scores over one short video pair are noisy and not comparable with
published ones, which pool whole test sets (frechet_distance takes any two feature sets for that).
"""

from __future__ import annotations


import numpy as np

from vasa_jax.cli import load_function
from vasa_jax.errors import ConfigError

SYNCNET_SHIFT = 15  # syncnet_python's default vshift: offsets in [-15, 15] frames are searched


def load_hook(spec: str, option: str):
    """The network function named by "package.module:function"; ConfigError naming the option if it cannot be
    had."""
    return load_function(spec, option, "mypackage.syncnet:embed")


def require(hook, metric: str, option: str):
    """The hook, or ConfigError saying that `metric` needs the user's network through `option`."""
    if hook is None:
        raise ConfigError(f"{metric} needs a network vasa-jax does not ship: supply it as {option} module:function "
                          "(see vasa_jax/eval/hooks.py for the signature)")
    return hook


def sync_scores(video_features, audio_features, shift: int = SYNCNET_SHIFT) -> dict:
    """Sync-C, Sync-D and the AV offset from SyncNet embeddings [T, D] (frame-aligned), as syncnet_python's
    calc_pdist and evaluate: for each offset in [-shift, shift], the mean over frames of the Euclidean distance
    between video frame t and audio frame t + offset (audio zero-padded); Sync-D = the smallest mean distance,
    Sync-C = median over offsets - that minimum, offset = shift - argmin (frames)."""
    v = np.asarray(video_features, np.float64)
    a = np.asarray(audio_features, np.float64)
    t = min(len(v), len(a))
    if t == 0 or v.ndim != 2 or a.ndim != 2 or v.shape[1] != a.shape[1]:
        raise ValueError(f"SyncNet features must be [T, D] each with one D; got {v.shape} and {a.shape}")
    v, a = v[:t], np.pad(a[:t], ((shift, shift), (0, 0)))
    dists = np.stack([np.linalg.norm(v[i] - a[i:i + 2 * shift + 1] + 1e-6, axis=-1) for i in range(t)])
    mean = dists.mean(0)  # [2 shift + 1]
    best = int(np.argmin(mean))
    return {"sync_c": float(np.median(mean) - mean[best]), "sync_d": float(mean[best]),
            "syncnet_offset_frames": shift - best}


def syncnet_metrics(embed, frames, audio) -> dict:
    """Sync-C / Sync-D of a video through the user's SyncNet callable (module docstring)."""
    embed = require(embed, "Sync-C / Sync-D", "--syncnet")
    video_features, audio_features = embed(np.asarray(frames), np.asarray(audio, np.float32))
    return sync_scores(video_features, audio_features)


def frechet_distance(a, b) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets [N, D] (FID / FVD's formula).

    tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), which has
    the same spectrum and is symmetric: no complex parts to discard, no ill-conditioned general matrix root."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two feature sets [N >= 2, D] with one D; got {a.shape} and {b.shape}")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(sa)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ sb @ root_a), 0, None)).sum()
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def fid(features, generated, reference) -> float:
    """FID between two videos' frames (uint8 [N, H, W, 3] each) through the user's feature network."""
    features = require(features, "FID", "--fid")
    return frechet_distance(features(np.asarray(generated)), features(np.asarray(reference)))


def fvd(features, generated, reference, clip_frames: int = 16) -> float:
    """FVD between two videos through the user's clip-feature network, over their non-overlapping clips of
    `clip_frames` frames (VASA-1's FVD_25: clip_frames=25)."""
    features = require(features, "FVD", "--fvd")

    def clips(frames):
        frames = np.asarray(frames)
        n = len(frames) // clip_frames
        if n < 2:
            raise ValueError(f"FVD over one video pair needs at least 2 clips of {clip_frames} frames; the video has "
                             f"{len(frames)} frames")
        return frames[: n * clip_frames].reshape(n, clip_frames, *frames.shape[1:])

    return frechet_distance(features(clips(generated)), features(clips(reference)))
