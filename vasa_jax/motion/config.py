"""The motion generator's architecture and sampling defaults (stage 2) as a frozen dataclass: hashable, so Flax
modules and jit can hold it as a static value."""

from __future__ import annotations

import dataclasses

from vasa_jax.errors import ConfigError, dataclass_from_section

SAMPLERS = ("ddim", "ddpm")
CONDITIONS = ("audio", "gaze", "distance", "emotion")  # the conditions classifier-free guidance can drop
GAZE_DIM = 2  # g = (theta, phi), degrees
DISTANCE_DIM = 1  # d = 1 / face scale


@dataclasses.dataclass(frozen=True)
class MotionConfig:
    # Sizes that come from the data: 0 = filled in from the motion source / audio encoder when training starts
    # (the stored config.json of a run holds the resolved values).
    motion_dim: int = 0  # length of a motion vector X_i = [z_pose_i, z_dyn_i]
    audio_dim: int = 0  # audio feature size per frame (80 for the mel encoder, 768 for wav2vec2-base)
    emotion_dim: int = 0  # emotion offset e: 1 in the toy world (sad ... happy); an emotion classifier's class count
    # Windows (25 fps): the denoiser sees `context` frames of the previous window (X_pre, A_pre), then `window`
    # frames to generate. DiffPoseTalk / JoyVASA: 100 and 10 (VASA-1 publishes neither).
    window: int = 100
    context: int = 10
    # Transformer encoder H (VASA-1: 8 layers, width 512, 8 heads); mlp_ratio * width hidden units per MLP.
    layers: int = 8
    width: int = 512
    heads: int = 8
    mlp_ratio: int = 4
    # The per-window controls (gaze, distance, emotion) also added to every frame token, besides driving adaLN:
    # a direct path from a control to the features it sets. Measured on the toy world (ground-truth motion,
    # 4000 steps): through adaLN alone the generated gaze followed its condition with a gain of ~1.4 (cfg 0).
    frame_conditions: bool = True
    # H's read-out: False: H's last layer is X0 itself; True: X0 = sqrt(ab_t) X_t + sqrt(1 - ab_t) F, F the last
    # layer (the variance-preserving skip, i.e. v-prediction read out as X0). Still a prediction of X0 trained
    # with the same loss. Measured on the toy world (4000 steps, 64 held-out clips, DDIM 50, lambda_g = 0): the
    # direct read-out froze the head once a velocity term stopped its jitter (pose std 0.7 / 1.1 / 0.2 degrees
    # against the data's 6.6 / 3.7 / 2.4) and followed gaze within 3.4 / 5.6 degrees (own / random targets);
    # the skip kept the head moving (4.7 / 3.9 / 1.8 without any extra term, jittery; see configs/toy.py for
    # the smoothness term) and followed gaze within 2.8 / 2.8.
    x0_skip: bool = True
    # Diffusion: a cosine schedule over `diffusion_steps` training steps; H predicts the clean motion X0.
    diffusion_steps: int = 1000
    # Sampling defaults (all overridable per call): sampler "ddim" (deterministic given the start noise) or
    # "ddpm" (ancestral); `sample_steps` denoising steps spread over the training steps (VASA-1: 50, or 10 fast).
    sampler: str = "ddim"
    sample_steps: int = 50
    # Windows continue their context (sampling only, no parameters): at every denoising step the first
    # `seam_frames` frames of a window's X0 estimate are shifted, with a weight that falls from 1 to 0 (half a
    # cosine), so that the window starts where the context's last step points; the model's next steps then
    # fit the rest of the window to that start. 0 = off. See continue_context in vasa_jax.motion.sampling.
    # Measured on the toy world (32 held-out clips, DDIM 50, no guidance): off, every window started with a
    # step of about twice the typical one (pose: 1.97 degrees against 0.21 inside windows); 4 / 8 / 12 frames
    # all close the seam (mean boundary jump 0.47 against the inside offsets' p95 0.55) and keep the lip sync
    # (mouth correlation 0.952 / 0.945 / 0.940); the longer the shift, the less the head moves (pose std
    # 2.16 / 1.99 / 1.83 degrees).
    seam_frames: int = 4
    # The online mode (sampling only). A hop is a window of which only the first few frames are kept, so its
    # start matters more than a window's: the head (z_pose) is continued over online_seam_pose frames, the rest
    # (lips, eyes, expression) over online_seam_dynamics. Measured on the toy world (a 4000-step toy_truth
    # model, 32 held-out clips, hop 4, look-ahead 4, DDIM 10; offline: mouth correlation 0.959, Delta-P 0.92x
    # the data's): both 4: mouth 0.86, Delta-P 1.71x; both 0: mouth 0.94, Delta-P 2.3x, a seam at every hop;
    # both 8: mouth 0.75, Delta-P 1.31x; head 8 / face 0: mouth 0.96, Delta-P 1.14x, seams at the hops;
    # 16 / 0: Delta-P 0.93x but the head moves little (pose std 2.7 against the data's 4.2), seams;
    # 8 / 2: mouth 0.90, Delta-P 1.15x, no seam; 8 / 1: mouth 0.92, Delta-P 1.16x, no seam (chosen).
    online_seam_pose: int = 8
    online_seam_dynamics: int = 1
    # Denoising steps of the online mode when none are asked for. Measured as above (hop 4, look-ahead 1, 8 / 1
    # seams): 4 steps: mouth 0.92, Delta-P 1.08x; 10: 0.91, 1.16x; and at look-ahead 4, 50 steps: 0.89, 1.52x
    # (more steps, more movement between hops). A hop samples a whole window for `hop` frames, W / hop times
    # the offline cost per frame, so steps are also what real time can least afford. The bundled demo's own videos
    # move more and follow the speech better with more (tests/reference/demo_lip_sync.py --online-steps 10,20, 5
    # held-out people, 10 s each; 4 / 10 / 20 steps: Delta-P 0.61x / 0.78x / 0.95x the real clips', higher at 10
    # than at 4 for every one; lip sync 0.02 / 0.17 / 0.20, real clips 0.34), but on a 2-core CPU 10 steps keep
    # real time only on a quiet machine (python -m vasa_jax.bench --realtime --online-steps N: 43 / 34 / 17
    # frames/s of compute, 95th percentile 0.21 / 0.24 / 14 s; on the same machine busier, 29 / 30 frames/s at 4 /
    # 10 steps with 0.32 / 0.81 s). At 4 steps the demo's own video (sample.py's portrait and speech, seeds 0-2,
    # python -m vasa_jax.eval) moved its head 0.47x as much as the real clip of that speech (0.244), under the
    # half that issue 17 asks; 5 / 6 / 8 steps: 0.51x / 0.56x / 0.61x (offline, DDIM 50: 0.56x), 6 clearing it for
    # every seed, at 62.0 frames/s of compute against 62.6 at 4 (first frame 0.19 s, p95 0.19 s; 8 steps: 55.5).
    # So 6, and --steps asks for more.
    online_sample_steps: int = 6
    # Classifier-free guidance scale lambda_c per condition (VASA-1's defaults: audio 0.5, gaze 1.0). A condition
    # with scale 0 costs no extra pass.
    cfg_audio: float = 0.5
    cfg_gaze: float = 1.0
    cfg_distance: float = 0.0
    cfg_emotion: float = 0.0

    def __post_init__(self):
        for name in ("window", "layers", "width", "heads", "mlp_ratio", "diffusion_steps", "sample_steps",
                     "online_sample_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"motion.{name} must be >= 1; got {getattr(self, name)}")
        if not 0 <= self.context <= self.window:
            raise ConfigError(f"motion.context must be in [0, window = {self.window}]: the context is the previous "
                              f"window's last frames; got {self.context}")
        if self.width % self.heads:
            raise ConfigError(f"motion.width ({self.width}) must be divisible by motion.heads ({self.heads})")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"motion.sampler must be one of {SAMPLERS}; got {self.sampler!r}")
        for name in ("seam_frames", "online_seam_pose", "online_seam_dynamics"):
            if not 0 <= getattr(self, name) <= self.window:
                raise ConfigError(f"motion.{name} must be in [0, window = {self.window}]; got {getattr(self, name)}")
        for name in ("sample_steps", "online_sample_steps"):
            if getattr(self, name) > self.diffusion_steps:
                raise ConfigError(f"motion.{name} ({getattr(self, name)}) cannot exceed motion.diffusion_steps "
                                  f"({self.diffusion_steps})")

    @property
    def cfg_scales(self) -> dict[str, float]:
        """The default guidance scales by condition name (CONDITIONS)."""
        return {name: float(getattr(self, f"cfg_{name}")) for name in CONDITIONS}

    def require_sizes(self) -> None:
        """Raise unless the data-given sizes are filled in (a network can be built)."""
        for name in ("motion_dim", "audio_dim", "emotion_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"motion.{name} is {getattr(self, name)}: it is filled in from the data when "
                                  "training starts; build a model from a trained run's config")

    @classmethod
    def from_config(cls, section) -> "MotionConfig":
        """From a ConfigDict section (unknown keys are an error)."""
        return dataclass_from_section(cls, section, "motion config")
