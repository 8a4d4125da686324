"""Evaluation metrics of talking-face video (issue 8): what `python -m vasa_jax.eval` reports.

    signals       Delta-P, pose statistics, correlation, the audio envelope and the download-free lip-sync score
    face_metrics  dlib landmarks and face descriptors of a video: CSIM, LMD, mouth opening
    capp          CAPP, VASA-1's contrastive audio-pose score: model, toy-world training, scoring
    toy           exact metrics against toy-world ground truth (pose, mouth, gaze)
    hooks         Sync-C / Sync-D, FID, FVD through networks the user supplies
    plots         PNG plots of mouth opening and head pose over time
    evaluate      one video's metrics (evaluate_video) and the command line

Stage-specific evaluations (vasa_jax.face.evaluate, vasa_jax.motion.evaluate) use the helpers in signals.
Submodules are imported where used: dlib, matplotlib and the CAPP networks load only when a metric needs them.
"""

from vasa_jax.eval.signals import (ANGLES, audio_envelope, correlation, delta_p, lagged_correlations, lip_sync,
                                   pose_statistics)

__all__ = ["ANGLES", "audio_envelope", "correlation", "delta_p", "lagged_correlations", "lip_sync",
           "pose_statistics"]
