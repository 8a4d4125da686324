"""Stage-2 training end to end on the tiny config: resume, the checkpoint loader, sampling and the evaluation
command on the result."""

import json

import jax
import numpy as np
import pytest

from vasa_jax.config import load_config
from vasa_jax.data.motion_data import MotionCache, build_cache
from vasa_jax.errors import ConfigError
from vasa_jax.motion import evaluate
from vasa_jax.motion.sampling import Controls, sample_windows
from vasa_jax.train.motion import load_motion_checkpoint, resolve_config, train_motion


def tiny(cache_dir, steps):
    c = load_config("configs/tiny.py")
    c.motion_data.cache_dir = str(cache_dir)
    c.motion_train.steps = steps
    c.motion_train.checkpoint_every = 1
    return c


def test_resumed_training_equals_uninterrupted_and_the_run_samples(tmp_path, capsys):
    def losses(workdir):
        return [json.loads(line)["loss"] for line in open(workdir / "metrics.jsonl")]

    cache = tmp_path / "cache"
    train_motion(tiny(cache, 3), str(tmp_path / "straight"), quiet=True)
    train_motion(tiny(cache, 2), str(tmp_path / "resumed"), quiet=True)
    train_motion(tiny(cache, 3), str(tmp_path / "resumed"), quiet=True)
    assert len(losses(tmp_path / "straight")) == 3
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "straight"), rtol=1e-6)

    config, motion, params = load_motion_checkpoint(str(tmp_path / "resumed"))
    assert (motion.motion_dim, motion.audio_dim, motion.emotion_dim) == (12, 80, 1)  # resolved from the data
    train = MotionCache(build_cache(config, "train"))
    np.testing.assert_allclose(params["stats"]["motion"]["mean"], train.frames("motion").mean(0), rtol=1e-4, atol=1e-5)
    out = sample_windows(params, train.clip(0)["audio"], Controls(gaze=(0.0, 0.0), distance=1.0), jax.random.key(0),
                         config=motion)
    assert out.shape == (30, 12) and np.all(np.isfinite(out))

    assert evaluate.main(["--workdir", str(tmp_path / "resumed"), "--steps", "2", "--json",
                          str(tmp_path / "eval.json")]) == 0
    metrics = json.load(open(tmp_path / "eval.json"))
    assert metrics["clips"] == 2 and metrics["windows_per_clip"] == 3 and set(metrics["pass"]) == {
        "mouth_correlation", "delta_p", "gaze", "boundaries", "seams"}
    assert evaluate.main(["--workdir", str(tmp_path / "resumed"), "--steps", "2", "--online", "--hop", "3",
                          "--lookahead", "2", "--json", str(tmp_path / "online.json")]) == 0
    online = json.load(open(tmp_path / "online.json"))
    assert online["mode"] == {"online": {"hop": 3, "lookahead": 2}} and online["seam_period"] == 3
    assert evaluate.main(["--workdir", str(tmp_path / "resumed"), "--hop", "3"]) == 2
    assert evaluate.main(["--workdir", str(tmp_path / "nothing")]) == 2
    assert "not a training workdir" in capsys.readouterr().err


def test_sizes_come_from_the_data(tmp_path):
    c = tiny(tmp_path, 3)
    cache = MotionCache(build_cache(c, "train"))
    c.motion.motion_dim = 7
    with pytest.raises(ConfigError, match="motion_dim is 7"):
        resolve_config(c, cache)
