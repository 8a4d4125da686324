"""tiny: unit tests (seconds on a CPU)."""

from vasa_jax.config import default_config


def get_config():
    config = default_config()
    face = config.face
    face.image_size = 32
    face.volume_channels, face.volume_depth, face.volume_size = 4, 4, 8
    face.id_dim, face.dyn_dim = 8, 8
    face.appearance_stem, face.appearance_widths, face.appearance_blocks = 8, (8, 8), 1
    face.encoder_widths = (8, 16)
    face.warp_widths = (8, 8)
    face.decoder_3d_blocks, face.decoder_2d_channels, face.decoder_2d_blocks = 1, 16, 1
    face.decoder_up_widths = (8, 8)
    face.groups = 4

    train = config.face_train
    train.batch_size = 2
    train.steps = 4
    train.learning_rate = 1e-3
    train.warmup_steps = 1
    train.ema_decay = 0.9
    train.log_every = 1
    train.image_every = 2
    train.checkpoint_every = 2
    train.discriminator_scales = 1
    train.discriminator_widths = (8, 16)

    config.data.clip_seconds = 1.0
    config.audio.encoder = "mel"
    config.audio.checkpoint = ""

    motion = config.motion
    motion.window, motion.context = 16, 4
    motion.layers, motion.width, motion.heads, motion.mlp_ratio = 2, 32, 2, 2
    motion.diffusion_steps, motion.sample_steps = 50, 4
    train = config.motion_train
    train.batch_size = 4
    train.steps = 4
    train.learning_rate = 1e-3
    train.warmup_steps = 1
    train.ema_decay = 0.9
    train.log_every = 1
    train.checkpoint_every = 2
    data = config.motion_data
    data.clip_seconds = 1.2  # 30 frames: windows with and without a full context
    data.train_clips, data.heldout_clips, data.heldout_seconds = 3, 2, 1.6
    return config
