"""Parity of vasa_jax.motion.joyvasa with upstream JoyVASA (PyTorch, CPU), the maxdiffusion way: upstream's
DitTalkingHead is built from its own source with random weights, saved as upstream's train.py saves a
checkpoint (a dict with `model` and `args`, paths in the args included), loaded through load_joyvasa, and each
part compared: audio_features (extract_audio_feature), denoise (denoising_net, both positional encodings), step
(every step of upstream's sample trajectory), a whole window (sample, the same noise) and a whole clip
(the wrapper's gen_motion_sequence, windows, template and smoothing included, the same noise).

    python tests/reference/joyvasa_parity.py --upstream /tmp/jv                  # released sizes: prints figures
    python tests/reference/joyvasa_parity.py --upstream /tmp/jv --small --record tests/data/joyvasa_small

--small --record writes the small checkpoint in the hub's layout, packs it into numpy archives
(tests/upstream_layout.py: no pickle is committed; the tests lay the files out again), plus reference.npz (inputs
and upstream's outputs), which tests/test_joyvasa.py compares against without upstream.

Upstream is patched at run time only, never in its files: its HuBERT is built from a config (random weights, eager
attention: transformers 5 refuses the output_attentions its subclass forces under sdpa) instead of a downloaded
folder; enc_dec_mask gets device="cpu" (its default is "cuda"); pykalman, imported by the wrapper's module and
unused here, is stubbed; at reduced width audio_feature_map takes the small HuBERT's width (upstream fixes 768);
and PositionalEncoding.forward is switched between the current form and the one before upstream's last commit.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import json
import pathlib
import pickle
import shutil
import sys
import tempfile
import types
from pathlib import Path

import jax
import numpy as np
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: upstream_layout
from upstream_layout import pack  # noqa: E402
from vasa_jax.motion.joyvasa import JoyVasa, load_joyvasa, sample_motion, sample_window, window_noise
from vasa_jax.motion.joyvasa.sampling import CLIP_PADDING, clip_plan

FULL = dict(motion_feat_dim=70, n_motions=100, n_prev_motions=25, feature_dim=512, n_diff_steps=50)
FULL_HUBERT = {}  # transformers' HubertConfig defaults: the base layout of chinese-hubert-base
SMALL = dict(motion_feat_dim=70, n_motions=8, n_prev_motions=3, feature_dim=16, n_diff_steps=10)
SMALL_HUBERT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
CFG_SCALE = 2.8
MODEL_FILE = Path("motion_generator") / "motion_generator_hubert_chinese.pt"
TEMPLATE_FILE = Path("motion_template") / "motion_template.pkl"


def import_upstream(upstream: Path) -> types.SimpleNamespace:
    """Upstream's modules, patched for a CPU run without downloads."""
    sys.path.insert(0, str(upstream))
    sys.modules.setdefault("pykalman", types.SimpleNamespace(KalmanFilter=None))
    common = importlib.import_module("src.modules.common")
    dit = importlib.import_module("src.modules.dit_talking_head")
    hubert = importlib.import_module("src.modules.hubert")
    wrapper = importlib.import_module("src.live_portrait_wmg_wrapper")
    dit.enc_dec_mask = functools.partial(common.enc_dec_mask, device="cpu")
    return types.SimpleNamespace(common=common, dit=dit, hubert=hubert, wrapper=wrapper,
                                 current_pe=common.PositionalEncoding.forward)


def set_positional_encoding(up, form: str) -> None:
    """"per_token": upstream's current forward; "single_row": its forward before the last commit (one row, index
    sequence length, added to every token)."""
    def single_row(self, x):
        return self.dropout(x + self.pe[:, x.shape[1], :])

    up.common.PositionalEncoding.forward = up.current_pe if form == "per_token" else single_row


def build_upstream(up, sizes: dict, hubert_sizes: dict, seed: int):
    from transformers import HubertConfig

    hubert_config = HubertConfig(**hubert_sizes, attn_implementation="eager")
    up.hubert.HubertModel.from_pretrained = classmethod(lambda cls, path: cls(hubert_config))
    torch.manual_seed(seed)
    model = up.dit.DitTalkingHead(device="cpu", audio_model="hubert_zh", **sizes)
    model.audio_feature_map = torch.nn.Linear(hubert_config.hidden_size, sizes["feature_dim"])
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # defaults (zero biases, unit norms) would hide a mapping mistake
        for name, p in model.named_parameters():
            vector = p.ndim <= 1 or name.endswith("bias")
            p.add_(torch.randn(p.shape, generator=generator) * (0.1 if vector else 0.02))
    return model.eval(), hubert_config


def save_like_upstream(model, sizes: dict, folder: Path) -> None:
    """The checkpoint as upstream's train.py writes it (args as its parser makes them, a Path among them)."""
    args = argparse.Namespace(**sizes, audio_model="hubert_zh", fps=25, pad_mode="zero", use_indicator=True,
                              target="sample", diff_schedule="cosine", guiding_conditions="audio,",
                              cfg_mode="incremental", data_root=pathlib.Path("data/"), exp_name="parity")
    (folder / MODEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"args": args, "model": model.state_dict(), "iter": 20000}, folder / MODEL_FILE)


def save_template(folder: Path, rng: np.random.Generator) -> dict:
    """A random motion template with upstream's keys (04_gen_template.py), pickled as upstream does."""
    sizes = {"exp": 63, "scale": 1, "t": 3, "pitch": 1, "yaw": 1, "roll": 1, "R": 9, "lip": 1, "eyes": 2}
    template = {}
    for part, n in sizes.items():
        low = rng.normal(0.0, 1.0, n).astype(np.float32)
        template.update({f"min_{part}": low, f"max_{part}": low + rng.uniform(0.5, 2.0, n).astype(np.float32),
                         f"mean_{part}": rng.normal(0.0, 0.1, n).astype(np.float32),
                         f"std_{part}": rng.uniform(0.01, 0.1, n).astype(np.float32),
                         f"abs_max_{part}": rng.uniform(1.0, 2.0, n).astype(np.float32)})
    (folder / TEMPLATE_FILE).parent.mkdir(parents=True, exist_ok=True)
    with open(folder / TEMPLATE_FILE, "wb") as f:
        pickle.dump(template, f)
    return template


@contextlib.contextmanager
def replayed_noise(starts, steps):
    """torch.randn / randn_like return the given arrays in order (upstream's sample draws x_T with randn and each
    step's z with randn_like); all must be used."""
    starts, steps = list(starts), list(steps)
    originals = torch.randn, torch.randn_like

    def randn(*size, **kwargs):
        return torch.from_numpy(np.array(starts.pop(0), np.float32))

    def randn_like(x, **kwargs):
        return torch.from_numpy(np.array(steps.pop(0), np.float32)).reshape(x.shape)

    torch.randn, torch.randn_like = randn, randn_like
    try:
        yield
    finally:
        torch.randn, torch.randn_like = originals
    assert not starts and not steps, (len(starts), len(steps))


def relative(ours, theirs) -> tuple[float, float]:
    theirs = np.asarray(theirs, np.float64)
    err = float(np.abs(np.asarray(ours, np.float64) - theirs).max())
    return err, err / float(np.abs(theirs).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True, help="a checkout of github.com/jdh-algo/JoyVASA")
    parser.add_argument("--small", action="store_true", help="reduced widths (CI reference) instead of released sizes")
    parser.add_argument("--record", type=Path, help="(--small) write checkpoint and reference.npz here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    up = import_upstream(args.upstream)
    sizes, hubert_sizes = (SMALL, SMALL_HUBERT) if args.small else (FULL, FULL_HUBERT)
    folder = args.record or Path(tempfile.mkdtemp(prefix="joyvasa-parity-"))
    folder.mkdir(parents=True, exist_ok=True)
    reference, hubert_config = build_upstream(up, sizes, hubert_sizes, args.seed)
    save_like_upstream(reference, sizes, folder)
    rng = np.random.default_rng(args.seed)
    template = save_template(folder, rng)
    hubert_folder = None
    if args.small:  # the small HuBERT's architecture (heads) is not HuBERT base's: it travels as a config.json
        hubert_folder = folder / "hubert"
        hubert_folder.mkdir(exist_ok=True)
        (hubert_folder / "config.json").write_text(json.dumps(
            {"model_type": "hubert", **{k: list(v) if isinstance(v, tuple) else v for k, v in hubert_sizes.items()}},
            indent=1))
    model, params = load_joyvasa(folder, hubert=hubert_folder)
    print(f"upstream {args.upstream}: sizes {sizes}, HuBERT {hubert_config.num_hidden_layers} layers x "
          f"{hubert_config.hidden_size}; positional encoding {model.config.positional_encoding}")
    n, p, m, d, t_max = (sizes[k] for k in ("n_motions", "n_prev_motions", "motion_feat_dim", "feature_dim",
                                            "n_diff_steps"))
    record, figures = {}, []

    # audio_features == extract_audio_feature: a window; reflection with the replicated sample (and the conv
    # features resampled 2L - 1 -> 2L); no padding; reflection alone.
    unit = n * 640
    lengths = [unit, unit - 320 + 74] + ([unit - 100, unit - 310] if args.small else [])
    for i, length in enumerate(lengths):
        wave = rng.normal(0.0, 0.1, (2, length)).astype(np.float32)
        with torch.no_grad():
            theirs = reference.extract_audio_feature(torch.from_numpy(wave), frame_num=n).numpy()
        ours = model.audio_features(params, wave, n)
        figures.append((f"audio_features ({length} samples)", *relative(ours, theirs)))
        record.update({f"audio_wave_{i}": wave, f"audio_out_{i}": theirs})

    # denoise == denoising_net, both positional encodings.
    inputs = dict(motion_t=rng.normal(size=(2, n, m)), audio_feat=rng.normal(size=(2, n, d)),
                  prev_motion=rng.normal(size=(2, p, m)), prev_audio=rng.normal(size=(2, p, d)))
    inputs = {k: v.astype(np.float32) for k, v in inputs.items()}
    step = rng.integers(1, t_max + 1, 2)
    record.update({f"denoise_{k}": v for k, v in inputs.items()}, denoise_step=step)
    for form in ("per_token", "single_row"):
        set_positional_encoding(up, form)
        with torch.no_grad():
            theirs = reference.denoising_net(*(torch.from_numpy(v) for v in inputs.values()),
                                             torch.from_numpy(step)).numpy()
        ours = JoyVasa(dataclasses.replace(model.config, positional_encoding=form)).denoise(
            params, *inputs.values(), step)
        figures.append((f"denoise ({form})", *relative(ours, theirs)))
        record[f"denoise_out_{form}"] = theirs
    set_positional_encoding(up, model.config.positional_encoding)

    # step and a whole window == sample's trajectory (start tokens, guidance, the same noise).
    audio = rng.normal(size=(2, n, d)).astype(np.float32)
    x_t = rng.normal(size=(2, n, m)).astype(np.float32)
    step_noise = rng.normal(size=(t_max, 2, n, m)).astype(np.float32)
    with torch.no_grad(), replayed_noise([], step_noise[:-1]):
        traj, _, _ = reference.sample(torch.from_numpy(audio), motion_at_T=torch.from_numpy(x_t), cfg_scale=CFG_SCALE,
                                      ret_traj=True)
    traj = np.stack([traj[t].numpy() for t in range(t_max + 1)])  # [T + 1, B, L, M], row t: x_t
    errors = [relative(model.step(params, traj[t], audio, None, None, t, step_noise[t_max - t], CFG_SCALE),
                       traj[t - 1]) for t in range(t_max, 0, -1)]
    figures.append(("step (worst of all steps)", max(e[0] for e in errors), max(e[1] for e in errors)))
    figures.append(("window (sample, same noise)",
                    *relative(sample_window(model, params, audio, None, None, x_t, step_noise, CFG_SCALE), traj[0])))
    record.update(window_audio=audio, window_noise=step_noise, window_traj=traj)

    # a whole clip == the wrapper's gen_motion_sequence (windows, template, smoothing).
    seconds = 2.6 * n / 25
    wave = rng.normal(0.0, 0.1, int(seconds * 16000)).astype(np.float32)
    windows = clip_plan(wave.size + sum(CLIP_PADDING), n)[0]
    key = jax.random.key(args.seed)
    noises = [window_noise(model, key, i) for i in range(windows)]
    clip_start = np.asarray(noises[0][0])
    clip_steps = np.stack([np.asarray(s) for _, s in noises])  # [windows, T, 1, L, M]
    audio_file = folder / "clip.wav"
    soundfile.write(audio_file, wave, 16000, subtype="FLOAT")
    wrapper_self = types.SimpleNamespace(
        motion_generator=reference, n_motions=n, n_prev_motions=p, fps=25, audio_unit=640.0, n_audio_samples=unit,
        pad_mode="zero", use_indicator=True, templete_dict=template, device="cpu")
    wrapper_args = types.SimpleNamespace(audio=str(audio_file), cfg_mode="incremental", cfg_cond=None,
                                         cfg_scale=CFG_SCALE, is_smooth_motion=True)
    with torch.no_grad(), replayed_noise([clip_start], [z for s in clip_steps for z in s[:-1]]):
        motion = up.wrapper.LivePortraitWrapper.gen_motion_sequence(wrapper_self, wrapper_args)
    parts = ("exp", "scale", "t", "pitch", "yaw", "roll")
    theirs = np.stack([np.concatenate([np.asarray(f[k]).reshape(-1) for k in parts]) for f in motion["motion"]])
    ours = sample_motion(model, params, wave, key, cfg_scale=CFG_SCALE)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    figures.append((f"clip ({windows} windows, {len(theirs)} frames)", *relative(ours, theirs)))
    audio_file.unlink()
    record.update(clip_wave=wave, clip_start=clip_start, clip_steps=clip_steps, clip_out=theirs)

    print(f"{'part':44s} {'max abs err':>12s} {'relative':>10s}")
    for name, err, rel in figures:
        print(f"{name:44s} {err:12.3e} {rel:10.3e}")
    if args.record:
        np.savez_compressed(folder / "reference.npz", cfg_scale=CFG_SCALE, **record)
        pack(folder)  # committed as numpy archives; the tests lay out upstream's files themselves
        print(f"recorded into {folder}")
    else:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
