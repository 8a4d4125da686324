"""The one config system: ml_collections ConfigDicts whose defaults are the base (VASA-1 / MegaPortraits) sizes.

configs/tiny.py, configs/toy.py and configs/base.py start from default_config() and change sizes; scripts
take `--config configs/toy.py` and command-line overrides such as `--config.face_train.steps=100`. Model
sections are turned into frozen dataclasses (vasa_jax.face.FaceConfig) where a network is built, so the
comments on their fields live there; the training and data sections are described here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import ml_collections

from vasa_jax.face.config import FaceConfig
from vasa_jax.motion.config import MotionConfig


def train_defaults() -> ml_collections.ConfigDict:
    """Optimisation and bookkeeping for one training stage (face_train, motion_train)."""
    c = ml_collections.ConfigDict()
    c.batch_size = 16  # global batch, split over every local device (and process)
    c.steps = 300_000
    c.learning_rate = 2e-4  # peak, after warm-up
    c.end_learning_rate = 1e-6  # cosine decay to this at the last step
    c.warmup_steps = 1000
    c.weight_decay = 1e-4  # AdamW, on weights of rank >= 2 only
    c.adam_b1 = 0.5
    c.adam_b2 = 0.999
    c.grad_clip_norm = 1.0  # global-norm clipping; 0 switches it off
    c.ema_decay = 0.999  # EMA of the generator's params (what sampling uses); 0 switches it off
    c.seed = 0
    c.log_every = 100  # steps between scalar logs
    c.image_every = 1000  # steps between PNG grids
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    return c


def default_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.face = ml_collections.ConfigDict(dataclasses.asdict(FaceConfig()))

    config.face_train = train_defaults()
    loss = ml_collections.ConfigDict()
    loss.reconstruction = 10.0  # L1 to the driver frame
    loss.perceptual = 20.0  # VGG19 features when face_train.vgg19_weights is set, else 1 - MS-SSIM
    loss.adversarial = 1.0  # hinge, multi-scale patch discriminator
    loss.feature_matching = 40.0  # discriminator features, real vs reconstructed
    loss.pairwise_transfer = 5.0  # VASA: pose_i + dyn_j rendered from frame i and from frame j agree
    loss.identity = 4.0  # cross-identity transfer keeps the source's identity features (needs identity_net)
    loss.pose = 1.0  # z_pose against pose labels where the data has them
    loss.mouth = 0.0  # L1 over the mouth region where the data has lip landmarks (configs/toy.py: measured)
    loss.lip_opening = 0.0  # the first z_dyn entry against the lip opening where the data has lip landmarks
    loss.motion_kept = 10.0  # motion_labels_only: the rest of z_dyn against init_from's encoder (L1)
    config.face_train.loss = loss
    config.face_train.init_from = ""  # fine-tune: a stage-1 workdir or a pipeline checkpoint to start from
    # init_from a model of another architecture (another resolution, say): take every weight whose name and shape
    # agree, a fresh init for the rest
    config.face_train.init_partial = False
    # Train only init_from's motion encoder, toward the labels (pose, lip opening) with the rest of its z_dyn kept
    # (vasa_jax/train/face.py): a cheap first step before a full fine-tune with a new label term.
    config.face_train.motion_labels_only = False
    # Train only the enhancer (face.enhancer_widths) of init_from's warping model, on the reconstruction terms
    # (and the adversarial ones where loss.adversarial > 0): several times cheaper a step than a full one
    # (configs/toy128_enhancer.py).
    config.face_train.enhancer_only = False
    # Networks kept as init_from has them (names of FaceNetwork's parts: appearance, identity, motion,
    # warp_to_canonical, warp_from_canonical, decoder, enhancer). Freezing identity and motion keeps the motion
    # space, so a stage-2 model trained on the old face drives the new one.
    config.face_train.freeze = ()
    config.face_train.vgg19_weights = ""  # converted torchvision VGG19 weights (.pth / .safetensors); "" = none
    config.face_train.identity_net = ""  # a frozen identity network's weights; "" = none (identity loss off)
    config.face_train.discriminator_scales = 3
    config.face_train.discriminator_widths = (64, 128, 256, 512)

    config.data = ml_collections.ConfigDict()
    config.data.source = "toyworld"  # "toyworld" (generated on the fly) or "shards" (preprocessed real video)
    config.data.shards = ""  # source == "shards": a folder written by python -m vasa_jax.data.preprocess
    config.data.clip_seconds = 4.0  # toy-world clips that frame pairs are drawn from
    config.data.supersample = 1  # toy-world render supersampling (smoother edges, k^2 the cost)
    config.data.num_workers = 0  # grain worker processes (0: in the training process)

    config.audio = ml_collections.ConfigDict()
    config.audio.encoder = "wav2vec2"  # "mel" (no checkpoint), "wav2vec2" or "hubert"
    config.audio.checkpoint = "checkpoints/wav2vec2-base-960h"  # folder of a Hugging Face checkpoint
    config.audio.layer = "last"

    # Stage 2: the motion diffusion transformer (fields described in vasa_jax/motion/config.py).
    config.motion = ml_collections.ConfigDict(dataclasses.asdict(MotionConfig()))
    train = train_defaults()
    # VASA-1 publishes no stage-2 optimisation settings; these are DiffPoseTalk / JoyVASA-like.
    train.batch_size = 64
    train.steps = 200_000
    train.learning_rate = 1e-4
    train.adam_b1 = 0.9
    train.ema_decay = 0.999
    dropout = ml_collections.ConfigDict()
    dropout.audio = 0.1  # VASA-1: each of A, g, d, e dropped with p = 0.1 ...
    dropout.gaze = 0.1
    dropout.distance = 0.1
    dropout.emotion = 0.1
    dropout.context = 0.5  # ... and (X_pre, A_pre) together with p = 0.5, so the first window (no past) works
    dropout.truncate = 0.1  # chance that a window's last audio frames are hidden (short audio, the last window)
    dropout.truncate_max = 0  # most frames hidden, uniform in [1, truncate_max]; 0 = window - 1
    train.dropout = dropout
    loss = ml_collections.ConfigDict()
    loss.x0 = 1.0  # ||X0 - H(X_t, t, C)||^2, VASA-1's loss
    loss.velocity = 0.0  # frame-to-frame differences against the data's, per feature in units of its typical change
    loss.smoothness = 0.0  # second differences against the data's (seam included)
    train.loss = loss
    train.velocity_features = "all"  # what the velocity term covers: "all" features or z_pose alone ("pose")
    train.velocity_snr_weighted = False  # weigh the velocity term by alpha_bar_t (acts at low noise only)
    config.motion_train = train

    data = ml_collections.ConfigDict()
    data.source = "toy_truth"  # "toy_truth" (exact toy-world state), "face_model" (stage 1's encode_motion) or "shards"
    data.face_workdir = ""  # the stage-1 workdir whose encode_motion gives the motion (source "face_model")
    data.face_step = -1  # its checkpoint step; -1: the latest (the run's config.json records the step it used)
    data.clip_seconds = 8.0  # training clips (windows with their context are cut from these)
    data.train_clips = 2000
    data.heldout_clips = 64  # evaluation clips, one per held-out identity in turn
    data.heldout_seconds = 12.0  # several windows each, so evaluation sees window boundaries
    data.cache_dir = "runs/motion_cache"  # motion + audio features + labels, computed once per data definition
    data.build_workers = 0  # processes synthesising toy clips while the cache is built (0: this one)
    data.num_workers = 0  # grain worker processes for training windows (0: in the training process)
    config.motion_data = data
    return config


def load_config(path: str | Path) -> ml_collections.ConfigDict:
    """The ConfigDict of a config file (a module with get_config(), such as configs/toy.py)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    spec = importlib.util.spec_from_file_location(f"vasa_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path}: a config file must define get_config()")
    return module.get_config()
