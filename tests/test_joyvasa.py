"""JoyVASA's motion generator (vasa_jax.motion.joyvasa) against upstream's own outputs, recorded at reduced width
from jdh-algo/JoyVASA's source by tests/reference/joyvasa_parity.py (tests/data/joyvasa_small, laid out by tests/upstream_layout.py: the checkpoint as
upstream saves one, a pathlib path in its args included; the template pickled as upstream pickles it; inputs and
outputs); the loader's refusals; and sampling (lengths, keys, DDIM, scan == stream, the converted form)."""

import argparse
import atexit
import os
import pathlib
import pickle
import shutil
import tempfile

import jax
import numpy as np
import pytest
import torch

from upstream_layout import unpack
from vasa_jax.io.weights import CheckpointError
from vasa_jax.motion.joyvasa import JoyVasaStream, load_joyvasa, sample_motion, sample_window, save_joyvasa

RECORDED = pathlib.Path(__file__).parent / "data" / "joyvasa_small"
# The recorded checkpoint laid out as upstream saves it (a torch.save .pt, the template pickle), made here.
DATA = unpack(RECORDED, tempfile.mkdtemp(prefix="vasa-jax-test-joyvasa-"))
atexit.register(shutil.rmtree, DATA, ignore_errors=True)
MODEL_FILE = pathlib.Path("motion_generator") / "motion_generator_hubert_chinese.pt"
TEMPLATE_FILE = pathlib.Path("motion_template") / "motion_template.pkl"
PARITY_TOL = 1e-4  # relative to the output's largest magnitude
SAMPLING_TOL = 1e-3


@pytest.fixture(scope="module")
def loaded():
    return load_joyvasa(DATA, hubert=DATA / "hubert")


@pytest.fixture(scope="module")
def reference():
    with np.load(RECORDED / "reference.npz") as f:
        return dict(f)


def _relative(ours, theirs) -> float:
    return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def test_audio_features_match_upstream(loaded, reference):
    """extract_audio_feature for a window and for lengths that take pad_audio's other branches."""
    model, params = loaded
    for i in range(4):
        ours = model.audio_features(params, reference[f"audio_wave_{i}"], model.config.n_motions)
        assert _relative(ours, reference[f"audio_out_{i}"]) <= PARITY_TOL, i


def test_denoise_matches_upstream_in_both_positional_encodings(loaded, reference):
    model, params = loaded
    assert model.config.positional_encoding == "single_row"  # the released weights' form is the default
    models = {"single_row": model,
              "per_token": load_joyvasa(DATA, hubert=DATA / "hubert", positional_encoding="per_token")[0]}
    inputs = [reference[f"denoise_{k}"] for k in ("motion_t", "audio_feat", "prev_motion", "prev_audio")]
    for form, model_form in models.items():
        out = model_form.denoise(params, *inputs, reference["denoise_step"])
        assert _relative(out, reference[f"denoise_out_{form}"]) <= PARITY_TOL, form
        other = "per_token" if form == "single_row" else "single_row"
        assert _relative(out, reference[f"denoise_out_{other}"]) > 0.01, form


def test_every_step_and_the_window_match_upstreams_sampler(loaded, reference):
    """Upstream's sample from x_T (first window: start tokens, guidance 2.8) with the recorded step noise."""
    model, params = loaded
    traj, noise, audio = reference["window_traj"], reference["window_noise"], reference["window_audio"]
    t_max, scale = model.config.n_diff_steps, float(reference["cfg_scale"])
    for t in range(t_max, 0, -1):
        ours = model.step(params, traj[t], audio, None, None, t, noise[t_max - t], scale)
        assert _relative(ours, traj[t - 1]) <= PARITY_TOL, t
    window = sample_window(model, params, audio, None, None, traj[t_max], noise, scale)
    assert _relative(window, traj[0]) <= SAMPLING_TOL


def test_clip_matches_upstreams_wrapper(loaded, reference):
    """gen_motion_sequence: padding, three windows with carried context, template, smoothing; the same noise."""
    model, params = loaded
    ours = sample_motion(model, params, reference["clip_wave"], cfg_scale=float(reference["cfg_scale"]),
                         noise=(reference["clip_start"], reference["clip_steps"]))
    assert ours.shape == reference["clip_out"].shape == (reference["clip_wave"].size // 640 + 3, 70)
    assert _relative(ours, reference["clip_out"]) <= SAMPLING_TOL


def test_sampling_lengths_keys_and_ddim(loaded):
    model, params = loaded
    wave = np.random.default_rng(0).normal(0.0, 0.1, 12000).astype(np.float32)  # 3 windows, padded or not
    motion = sample_motion(model, params, wave, jax.random.key(1))
    assert motion.shape == (12000 // 640 + 3, 70) and np.all(np.isfinite(motion))
    np.testing.assert_array_equal(motion, sample_motion(model, params, wave, jax.random.key(1)))
    assert not np.allclose(motion, sample_motion(model, params, wave, jax.random.key(2)), atol=1e-3)
    assert sample_motion(model, params, wave, jax.random.key(1), pad_clip=False).shape == (12000 // 640, 70)
    ddim = sample_motion(model, params, wave, jax.random.key(1), sampler="ddim", steps=3)
    assert ddim.shape == motion.shape and np.all(np.isfinite(ddim))
    np.testing.assert_array_equal(ddim, sample_motion(model, params, wave, jax.random.key(1), sampler="ddim",
                                                      steps=3))
    with pytest.raises(ValueError, match="all 10 steps"):
        sample_motion(model, params, wave, jax.random.key(1), steps=3)
    with pytest.raises(ValueError, match="sampler must be"):
        sample_motion(model, params, wave, jax.random.key(1), sampler="euler")


def test_stream_equals_the_scan(loaded):
    model, params = loaded
    window = model.config.window_samples
    wave = np.random.default_rng(1).normal(0.0, 0.1, 2 * window + 700).astype(np.float32)
    offline = sample_motion(model, params, wave, jax.random.key(3))
    stream = JoyVasaStream(model, params, jax.random.key(3))
    windows, ready = [], []
    # The stream starts with the wrapper's 1280 zeros: the first window completes after window - 1280 samples.
    for chunk in np.split(wave, [100, window - 1280, window + 5, 2 * window + 600]):
        out = stream.push(chunk)
        ready.append(len(out))
        windows += out
    assert ready == [0, 1, 0, 1, 0]
    windows += stream.flush()
    assert [len(w) for w in windows] == [8, 8, 4] and len(offline) == 20
    np.testing.assert_allclose(np.concatenate(windows), offline, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(wave[:10])


def test_converted_form_round_trips(loaded, tmp_path):
    model, params = loaded
    save_joyvasa(tmp_path, model, params)
    again, params_again = load_joyvasa(tmp_path)
    assert again == model
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(params_again)):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    (tmp_path / "joyvasa.safetensors").unlink()
    with pytest.raises(CheckpointError, match="joyvasa.safetensors"):
        load_joyvasa(tmp_path)


def _copy_with(tmp_path, edit_state=None, args=None):
    """The small JoyVASA folder copied, its checkpoint rewritten with edit_state(state) applied."""
    folder = tmp_path / "JoyVASA"
    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("reference.npz"))
    with torch.serialization.safe_globals([argparse.Namespace, pathlib.PosixPath]):
        data = torch.load(folder / MODEL_FILE, weights_only=True)
    if edit_state is not None:
        edit_state(data["model"])
    if args is not None:
        data["args"] = args
    torch.save(data, folder / MODEL_FILE)
    return folder


def test_loader_names_missing_unexpected_and_misshapen_keys(tmp_path):
    folder = _copy_with(tmp_path / "a", lambda s: s.pop("denoising_net.feature_proj.weight"))
    with pytest.raises(CheckpointError, match=r"motion_generator_hubert_chinese.pt: .*1 missing keys: "
                                              r"denoising_net.feature_proj.weight"):
        load_joyvasa(folder, hubert=folder / "hubert")
    folder = _copy_with(tmp_path / "b", lambda s: s.update({"null_audio_feat": torch.zeros(1, 1, 5),
                                                            "denoising_net.extra.bias": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys: denoising_net.extra.bias; .*wrong shape: "
                                              r"null_audio_feat \(1, 1, 5\)"):
        load_joyvasa(folder, hubert=folder / "hubert")
    # Without the HuBERT folder the encoder is read as HuBERT base, which the small one is not.
    with pytest.raises(CheckpointError, match="audio_encoder.* weights do not fit .*pass the encoder's folder"):
        load_joyvasa(DATA)
    with pytest.raises(CheckpointError, match="not found"):
        load_joyvasa(tmp_path / "nowhere")
    folder = _copy_with(tmp_path / "c", args=argparse.Namespace(n_motions=8, audio_model="hubert_zh"))
    with pytest.raises(CheckpointError, match="its args lack"):
        load_joyvasa(folder, hubert=folder / "hubert")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_files_that_would_run_code_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    folder = _copy_with(tmp_path / "template")
    with open(folder / TEMPLATE_FILE, "wb") as f:
        pickle.dump({"mean_exp": _RunsCode(marker)}, f)
    with pytest.raises(CheckpointError, match=r"motion_template.pkl: .*refers to posix.mkdir.*refused"):
        load_joyvasa(folder, hubert=folder / "hubert")
    folder = _copy_with(tmp_path / "checkpoint", args=_RunsCode(marker))
    with pytest.raises(CheckpointError, match=r"cannot be read by torch.load\(weights_only=True\)"):
        load_joyvasa(folder, hubert=folder / "hubert")
    assert not marker.exists()


def test_template_problems_name_the_entry(tmp_path):
    folder = _copy_with(tmp_path)
    with open(folder / TEMPLATE_FILE, "rb") as f:
        template = pickle.load(f)  # our own test file
    template.pop("max_yaw")
    with open(folder / TEMPLATE_FILE, "wb") as f:
        pickle.dump(template, f)
    with pytest.raises(CheckpointError, match="lacks 'max_yaw'"):
        load_joyvasa(folder, hubert=folder / "hubert")
    template["max_yaw"], template["std_exp"] = template["min_yaw"], np.ones(60, np.float32)
    with open(folder / TEMPLATE_FILE, "wb") as f:
        pickle.dump(template, f, protocol=5)
    with pytest.raises(CheckpointError, match="'std_exp' has 60 values; expected 63"):
        load_joyvasa(folder, hubert=folder / "hubert")
    (folder / TEMPLATE_FILE).unlink()
    with pytest.raises(CheckpointError, match="motion template not found"):
        load_joyvasa(folder, hubert=folder / "hubert")

