"""Stage-1 training: the face latent space with its losses, as one pure step function.

Per example: a source frame i and a driver frame j of one clip, and a frame x of another person.
    reconstruction    decode(V_app_i, z_id_i, motion_j) should be frame j (L1 + perceptual)
    pairwise transfer (VASA) "frame i with the dynamics of j" = decode(V_app_i, z_id_i, [pose_i, dyn_j]) and
                      "frame j with the pose of i" = decode(V_app_j, z_id_j, [pose_i, dyn_j]) show the same
                      thing; their difference is minimised, which fights pose / dynamics entanglement
    cross-identity    decode(V_app_i, z_id_i, motion_x): must look real (adversarial) and keep i's identity
                      (a frozen identity network's cosine similarity, when one is supplied)
    pose              z_pose against pose labels where the data has them (toy-world ground truth)
    mouth             L1 of the reconstruction over the driver's mouth region where the data has lip landmarks
                      (LivePortrait's lip-region term: at a small resolution the mouth is a few pixels, which a
                      whole-image loss barely sees, and lip sync is what stage 2 needs the motion to carry)
    lip opening       the driver's first dynamics entry against its lip opening where the data has lip landmarks
                      (face_pairs' driver_lip_opening): reconstruction alone left the toy demo's dynamics latent nearly
                      blind to the mouth, which no renderer or motion model downstream can make up for
    adversarial       multi-scale patch discriminator, hinge loss, plus feature matching on the reconstruction

face_train.motion_labels_only: a cheaper first step of a fine-tune that adds a label (lip opening): only the
motion encoder of face_train.init_from's model trains, on the pose and lip-opening terms and on `motion_kept`
(the rest of z_dyn against what that model's encoder gives, so its renderer still reads it); no decode, no
discriminator. Its checkpoint is a face model like any other, for a full fine-tune to start from.

face_train.enhancer_only: trains only the enhancer (configs/toy128_enhancer.py) of a face whose warping model comes
from init_from, on the reconstruction (L1, perceptual, mouth; with loss.adversarial > 0 also the adversarial and
feature-matching terms of the reconstruction, the discriminator training beside it): the other terms judge what
the frozen base decides (pose, identity, disentanglement), and skipping their three renders makes a step several
times cheaper.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from vasa_jax.face import POSE_DIM, FaceConfig, WarpingFaceModel
from vasa_jax.face.model import FACE_PARTS
from vasa_jax.face.discriminator import (MultiScaleDiscriminator, feature_matching_loss, hinge_discriminator_loss,
                                         hinge_generator_loss)
from vasa_jax.face.perceptual import make_perceptual_loss
from vasa_jax.pose import POSE_SCALE
from vasa_jax.data.face_pairs import face_pair_batches, mouth_mean
from vasa_jax.errors import ConfigError
from vasa_jax.train.checkpoint import Checkpointer
from vasa_jax.train.logging import image_grid
from vasa_jax.train.loop import train as run_training
from vasa_jax.train.optim import freeze_groups, make_optimizer
from vasa_jax.train.parallel import make_mesh, process_batch_size, to_host
from vasa_jax.train.state import TrainState


def psnr(a, b):
    """Peak signal-to-noise ratio (dB) of images in [0, 1], per image."""
    mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
    return -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))


def _labelled_mean(err, has):
    """Mean of per-example errors [B] over the examples whose data has the label (has [B], 0 / 1); 0 if none."""
    return (err * has).sum() / jnp.maximum(has.sum(), 1.0)


class FaceTrainer:
    """Builds the stage-1 state and step from a config (the face and face_train sections)."""

    def __init__(self, config):
        self.config = config
        self.face = WarpingFaceModel(FaceConfig.from_config(config.face))
        train = config.face_train
        self.weights = dict(train.loss)
        if not train.identity_net:
            self.weights["identity"] = 0.0
            self.identity_net = None
        else:
            from vasa_jax.face.identity import load_identity_net
            self.identity_net = load_identity_net(train.identity_net)
        self.perceptual = make_perceptual_loss(train.vgg19_weights)
        self.discriminator = MultiScaleDiscriminator(scales=train.discriminator_scales,
                                                     widths=tuple(train.discriminator_widths))
        self.labels_only = bool(train.get("motion_labels_only", False))
        self.enhancer_only = bool(train.get("enhancer_only", False))
        if self.labels_only and self.enhancer_only:
            raise ConfigError("face_train.motion_labels_only and face_train.enhancer_only each train one part; "
                              "set one of them")
        self.enhancer_adversarial = self.enhancer_only and self.weights["adversarial"] > 0
        if self.enhancer_only and not self.face.config.enhancer_widths:
            raise ConfigError("face_train.enhancer_only: this face config has no enhancer (face.enhancer_widths "
                              "is empty)")
        self.frozen = tuple(train.get("freeze", ()))
        if self.labels_only or self.enhancer_only:
            trained = "motion" if self.labels_only else "enhancer"
            self.frozen = tuple(part for part in FACE_PARTS if part != trained)
        unknown = sorted(set(self.frozen) - set(FACE_PARTS))
        if unknown:
            raise ConfigError(f"face_train.freeze: unknown part(s) {unknown}; the face model's parts are {FACE_PARTS}")
        self.optimizer = freeze_groups(make_optimizer(train), self.frozen)
        self.disc_optimizer = make_optimizer(train)
        self.generate_jit = jax.jit(self.generate)
        # Read now, on the host: init_state runs under jit, where a workdir's Orbax restore cannot.
        self.init_report = ""  # what init_partial took, for train_face to show
        self.initial_params = self._initial_params(train.get("init_from", ""))

    def _initial_params(self, folder: str):
        """Face weights to start from (fine-tuning): a stage-1 workdir's latest EMA params or a pipeline
        checkpoint's face; None: a fresh init. The discriminator and optimiser start fresh either way."""
        if not folder:
            return None
        from vasa_jax.data.motion_data import load_face_folder

        face, params = load_face_folder(folder)
        if face == self.face:
            return jax.tree.map(jnp.asarray, params)
        if not self.config.face_train.get("init_partial", False):
            raise ConfigError(f"face_train.init_from={folder}: its face model ({face}) differs from this config's "
                              f"({self.face}); start from weights of the same architecture, or set "
                              "face_train.init_partial to take the weights whose names and shapes agree")
        fresh = self.face.init(jax.random.key(self.config.face_train.seed))
        merged, copied = transfer_matching(fresh, params)
        names = set(traverse_util.flatten_dict(fresh, sep="/"))
        new = sorted({name.split("/")[0] for name in names - copied})  # parts with at least one fresh array
        self.init_report = (f"init_from {folder}: {len(copied)} of {len(names)} weight arrays taken; parts with "
                            f"fresh weights: {', '.join(new) or 'none'}")
        missing = sorted(set(self.frozen) & set(new))
        if missing:
            raise ConfigError(f"face_train.freeze={list(self.frozen)}: {missing} would stay at a fresh init; "
                              f"{folder} has no weights of their shapes")
        return merged

    def init_state(self, key) -> TrainState:
        k_face, k_disc = jax.random.split(key)
        params = self.face.init(k_face) if self.initial_params is None else self.initial_params
        if self.labels_only:  # the starting motion encoder, what motion_kept holds the rest of z_dyn to
            return TrainState.create(params, self.optimizer, ema=self.config.face_train.ema_decay > 0,
                                     extra={"teacher_motion": params["motion"]})
        if self.enhancer_only and not self.enhancer_adversarial:
            return TrainState.create(params, self.optimizer, ema=self.config.face_train.ema_decay > 0)
        size = self.face.image_size
        disc_params = jax.jit(self.discriminator.init)(k_disc, jnp.zeros((1, size, size, 3)))["params"]
        return TrainState.create(params, self.optimizer, ema=self.config.face_train.ema_decay > 0,
                                 extra={"disc_params": disc_params,
                                        "disc_opt_state": self.disc_optimizer.init(disc_params)})

    def _images(self, batch):
        return tuple(jnp.asarray(batch[k], jnp.float32) / 255.0 for k in ("source", "driver", "other"))

    def generate(self, params, batch):
        """Everything the generator produces for a batch (also used for the image grids)."""
        source, driver, other = self._images(batch)
        face = self.face
        v_i, id_i, m_i = face.analyze(params, source)
        v_j, id_j, m_j = face.analyze(params, driver)
        m_x = face.encode_motion(params, other)
        mix = jnp.concatenate([m_i[:, :POSE_DIM], m_j[:, POSE_DIM:]], axis=-1)
        # One batched decode for the four renderings that share no inputs but the weights.
        v = jax.tree.map(lambda i, j: jnp.concatenate([i, i, j, i]), v_i, v_j)
        ids = jnp.concatenate([id_i, id_i, id_j, id_i])
        motion = jnp.concatenate([m_j, mix, mix, m_x])
        recon, from_i, from_j, transfer = jnp.split(face.decode(params, v, ids, motion), 4)
        return dict(source=source, driver=driver, other=other, recon=recon, from_i=from_i, from_j=from_j,
                    transfer=transfer, motion_i=m_i, motion_j=m_j, motion_x=m_x)

    def _stop_frozen(self, params):
        """Frozen parts get no gradient at all (set_to_zero would discard it; XLA then never computes it)."""
        return {name: jax.lax.stop_gradient(group) if name in self.frozen else group for name, group in params.items()}

    def _pose_loss(self, out, batch):
        """Mean over the frames whose motion `out` holds (motion_i, motion_j, motion_x)."""
        scale = jnp.asarray(POSE_SCALE)
        has = jnp.asarray(batch["has_pose"], jnp.float32)
        pairs = [(m, key) for m, key in (("motion_i", "source_pose"), ("motion_j", "driver_pose"),
                                         ("motion_x", "other_pose")) if m in out]
        err = 0.0
        for motion, key in pairs:
            diff = jnp.abs(out[motion][:, :POSE_DIM] - jnp.asarray(batch[key], jnp.float32)) / scale
            err = err + _labelled_mean(diff.mean(axis=1), has)
        return err / len(pairs)

    def _mouth_loss(self, out, batch):
        err = mouth_mean(jnp.abs(out["recon"] - out["driver"]), batch["driver_mouth"])
        return _labelled_mean(err, jnp.asarray(batch["has_mouth"], jnp.float32))

    def _lip_opening_loss(self, out, batch):
        err = jnp.abs(out["motion_j"][:, POSE_DIM] - jnp.asarray(batch["driver_lip_opening"], jnp.float32))
        return _labelled_mean(err, jnp.asarray(batch["has_mouth"], jnp.float32))

    def generator_loss(self, params, disc_params, batch):
        out = self.generate(self._stop_frozen(params), batch)
        w = self.weights
        terms = {
            "reconstruction": jnp.abs(out["recon"] - out["driver"]).mean(),
            "perceptual": self.perceptual(out["recon"], out["driver"]),
            "pairwise_transfer": jnp.abs(out["from_i"] - out["from_j"]).mean(),
            "pose": self._pose_loss(out, batch),
            "mouth": self._mouth_loss(out, batch),
            "lip_opening": self._lip_opening_loss(out, batch),
        }
        real = self.discriminator.apply({"params": disc_params}, out["driver"])
        fake = self.discriminator.apply({"params": disc_params}, jnp.concatenate([out["recon"], out["transfer"]]))
        terms["adversarial"] = hinge_generator_loss(fake)
        recon_fake = jax.tree.map(lambda t: t[: out["recon"].shape[0]], fake)
        terms["feature_matching"] = feature_matching_loss(real, recon_fake)
        if self.identity_net is not None:
            from vasa_jax.face.identity import identity_similarity_loss
            terms["identity"] = identity_similarity_loss(self.identity_net, out["source"], out["transfer"])
        total = sum(w[name] * value for name, value in terms.items())
        return total, (terms, out)

    def labels_loss(self, params, teacher_motion, batch):
        """motion_labels_only: the motion encoder's label terms and motion_kept, on the driver frames (the lip
        label's); (total, terms)."""
        driver = self._images(batch)[1]
        motion = self.face.encode_motion(params, driver)
        kept = self.face.encode_motion(dict(params, motion=teacher_motion), driver)
        out = {"motion_j": motion}
        terms = {"pose": self._pose_loss(out, batch), "lip_opening": self._lip_opening_loss(out, batch),
                 "motion_kept": jnp.abs(motion[:, POSE_DIM + 1:] - kept[:, POSE_DIM + 1:]).mean()}
        return sum(self.weights[name] * value for name, value in terms.items()), terms

    def enhancer_loss(self, params, disc_params, batch):
        """enhancer_only: the reconstruction terms of the driver frame, and the adversarial ones where
        disc_params is given; (total, (terms, out))."""
        params = self._stop_frozen(params)
        source, driver, _ = self._images(batch)
        v_app, z_id = self.face.encode_source(params, source)
        recon = self.face.decode(params, v_app, z_id, self.face.encode_motion(params, driver))
        out = {"driver": driver, "recon": recon}
        terms = {"reconstruction": jnp.abs(recon - driver).mean(), "perceptual": self.perceptual(recon, driver),
                 "mouth": self._mouth_loss(out, batch)}
        if disc_params is not None:
            fake = self.discriminator.apply({"params": disc_params}, recon)
            terms["adversarial"] = hinge_generator_loss(fake)
            terms["feature_matching"] = feature_matching_loss(
                self.discriminator.apply({"params": disc_params}, driver), fake)
        return sum(self.weights[name] * value for name, value in terms.items()), (terms, out)

    def discriminator_loss(self, disc_params, out):
        fakes = jax.lax.stop_gradient(jnp.concatenate([out[k] for k in ("recon", "transfer") if k in out]))
        real = self.discriminator.apply({"params": disc_params}, out["driver"])
        fake = self.discriminator.apply({"params": disc_params}, fakes)
        return hinge_discriminator_loss(real, fake)

    def step(self, state: TrainState, batch, key):
        """One simultaneous generator and discriminator update (with motion_labels_only, a motion-encoder update;
        with enhancer_only, an enhancer update): pure (state, batch, key) -> (state, metrics)."""
        del key  # the step is deterministic; the key is there for the loop's uniform signature
        if self.enhancer_only and not self.enhancer_adversarial:
            (loss, (terms, out)), grads = jax.value_and_grad(self.enhancer_loss, has_aux=True)(
                state.params, None, batch)
            new_state = state.apply_gradients(grads, self.config.face_train.ema_decay)
            return new_state, {"loss": loss, "psnr": psnr(out["recon"], out["driver"]).mean(),
                               **{f"loss/{k}": v for k, v in terms.items()}}
        if self.labels_only:
            (loss, terms), grads = jax.value_and_grad(self.labels_loss, has_aux=True)(
                state.params, state.extra["teacher_motion"], batch)
            new_state = state.apply_gradients(grads, self.config.face_train.ema_decay)
            return new_state, {"loss": loss, **{f"loss/{k}": v for k, v in terms.items()}}
        disc_params = state.extra["disc_params"]
        generator_loss = self.enhancer_loss if self.enhancer_only else self.generator_loss
        (g_loss, (terms, out)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state.params, disc_params, batch)
        d_loss, d_grads = jax.value_and_grad(self.discriminator_loss)(disc_params, out)
        d_updates, d_opt_state = self.disc_optimizer.update(d_grads, state.extra["disc_opt_state"], disc_params)
        new_state = state.apply_gradients(g_grads, self.config.face_train.ema_decay).replace(
            extra={"disc_params": optax.apply_updates(disc_params, d_updates), "disc_opt_state": d_opt_state})
        metrics = {"loss": g_loss, "discriminator": d_loss, "psnr": psnr(out["recon"], out["driver"]).mean(),
                   **{f"loss/{k}": v for k, v in terms.items()}}
        return new_state, metrics


def image_grids(trainer: FaceTrainer, state: TrainState, batch) -> dict:
    """source | driver | reconstruction | other person | cross-identity transfer, from the EMA params."""
    params = state.ema_params if state.ema_params is not None else state.params
    out = trainer.generate_jit(params, batch)
    return {"face": image_grid(to_host([out[k] for k in ("source", "driver", "recon", "other", "transfer")]))}


def transfer_matching(fresh, loaded):
    """fresh's params with every array that loaded has under the same name and shape; also the set of those
    names ('part/Module/.../kernel')."""
    flat_fresh = traverse_util.flatten_dict(fresh, sep="/")
    flat_loaded = traverse_util.flatten_dict(loaded, sep="/")
    copied = {k for k, v in flat_fresh.items() if k in flat_loaded and flat_loaded[k].shape == v.shape}
    merged = {k: jnp.asarray(flat_loaded[k] if k in copied else v) for k, v in flat_fresh.items()}
    return traverse_util.unflatten_dict(merged, sep="/"), copied


STAGE_SECTIONS = ("face", "face_train", "data")  # what stage 1 reads; a resume compares only these


def train_face(config, workdir: str, *, quiet: bool = False) -> TrainState:
    """Stage-1 training to config.face_train.steps in workdir (resuming there if it holds a checkpoint)."""
    if config.face_train.get("freeze") and not config.face_train.get("init_from"):
        raise ConfigError(f"face_train.freeze={list(config.face_train.freeze)} keeps parts as face_train.init_from has "
                          "them, and init_from is empty; give the stage-1 workdir or pipeline folder to start from")
    for only, what in (("motion_labels_only", "teaches the motion encoder of"),
                       ("enhancer_only", "trains an enhancer on")):
        if config.face_train.get(only) and not config.face_train.get("init_from"):
            raise ConfigError(f"face_train.{only} {what} face_train.init_from's model, and init_from is empty; give "
                              "the stage-1 workdir or pipeline folder to start from")
    trainer = FaceTrainer(config)
    train = config.face_train
    if trainer.init_report and not quiet:
        print(trainer.init_report)

    def make_iterator():
        return face_pair_batches(config.data, image_size=trainer.face.image_size,
                                 batch_size=process_batch_size(train.batch_size, mesh), seed=train.seed)

    mesh = make_mesh()
    return run_training(workdir, train, trainer.init_state, trainer.step, make_iterator, mesh=mesh, config=config,
                        config_sections=STAGE_SECTIONS, on_images=lambda state, batch: image_grids(trainer, state, batch), quiet=quiet)


def load_face_checkpoint(workdir: str, *, ema: bool = True, step: int | None = None):
    """A trained face model from a stage-1 workdir: (config, WarpingFaceModel, params).

    The config is the run's own (workdir/config.json); ema=True gives the EMA params sampling should use.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{workdir}: not a training workdir (no config.json); train with train.py first")
    import ml_collections

    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if "init_from" in config.face_train:
        config.face_train.init_from = ""  # the run's own weights are loaded; where it started from is not needed
    trainer = FaceTrainer(config)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            jax.eval_shape(trainer.init_state, jax.random.key(0)))
    checkpointer = Checkpointer(workdir)
    if checkpointer.latest_step() is None:
        raise ConfigError(f"{workdir}: holds no checkpoint yet")
    state = checkpointer.restore(step, abstract)
    checkpointer.close()
    params = state.ema_params if ema and state.ema_params is not None else state.params
    return config, trainer.face, params
