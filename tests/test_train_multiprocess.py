"""Training across processes: two processes (jax.distributed over localhost, one CPU device each, JAX's Gloo
CPU collectives), each reading its own shard of the data, train stage 2 on the tiny config step for step as the
one-process, two-device run does, through an interruption and a resume, with Orbax checkpoints written by both.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from vasa_jax.config import load_config
from vasa_jax.data.motion_data import MotionCache, build_cache, cache_dir
from vasa_jax.train.checkpoint import Checkpointer
from vasa_jax.train.motion import MotionTrainer, resolve_config, train_motion

REPO = Path(__file__).resolve().parents[1]
PROCESSES = 2
LAUNCH_TIMEOUT = 150  # seconds for one launch of both processes (10-30 s on two shared cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_env(index: int, port: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES=str(PROCESSES), JAX_PROCESS_ID=str(index))
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=1".strip()
    return env


def launch(workdir: Path, cache: Path, logs: Path) -> list:
    """Starts `python train.py motion` as two processes of one run; returns (process, log file) pairs."""
    port = _free_port()
    command = [sys.executable, "train.py", "motion", "--config", "configs/tiny.py", "--workdir", str(workdir),
               "--quiet", f"--config.motion_data.cache_dir={cache}"]
    launched = []
    for i in range(PROCESSES):
        out = logs / f"process{i}-{time.monotonic_ns()}.log"
        with open(out, "w") as log:
            launched.append((subprocess.Popen(command, cwd=REPO, env=_process_env(i, port), stdout=log,
                                              stderr=subprocess.STDOUT), out))
    return launched


def finish(launched: list) -> None:
    """Waits for launch()'s processes (LAUNCH_TIMEOUT at most); fails with their output if either fails."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    try:
        for p, _ in launched:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for p, _ in launched:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in launched:
        assert p.returncode == 0, f"{out.name} exited {p.returncode}:\n{out.read_text()[-3000:]}"


def losses(workdir: Path) -> list[dict]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k == "step" or k.startswith("loss")} for r in records]


def test_two_processes_train_as_two_devices_through_a_resume(tmp_path):
    assert jax.device_count() == 2, "tests/conftest.py should give the CPU two devices"
    config = load_config("configs/tiny.py")
    cache = tmp_path / "cache"
    config.motion_data.cache_dir = str(cache)
    steps = config.motion_train.steps
    assert steps == 4 and config.motion_train.checkpoint_every == 2 and config.motion_train.batch_size == 4
    build_cache(config, "train")  # the motion data both runs read
    multi = tmp_path / "two_processes"
    launched = launch(multi, cache, tmp_path)
    reference = train_motion(config, str(tmp_path / "one_process"), quiet=True)  # meanwhile, here
    finish(launched)
    want = losses(tmp_path / "one_process")
    assert [r["step"] for r in want] == list(range(1, steps + 1))
    assert_same_losses(losses(multi), want)
    # The interruption: what a run killed after its step-2 checkpoint leaves. The rerun resumes from there (the
    # same program as before, so it compiles nothing new) and trains steps 3 and 4 again, as before.
    shutil.rmtree(multi / "checkpoints" / str(steps))
    resumed_at = time.time()
    finish(launch(multi, cache, tmp_path))
    assert_same_losses(losses(multi), want)
    times = [json.loads(line)["time"] for line in (multi / "metrics.jsonl").read_text().splitlines()]
    assert max(times[:2]) < resumed_at < min(times[2:])  # steps 1-2 were not trained again

    # Both processes saved: the state checkpoint restores here (one process) to the reference's state, and each
    # process's data position is in it.
    checkpointer = Checkpointer(str(multi))
    assert checkpointer.all_steps() == [2, 4]
    assert sorted(p.name for p in (multi / "checkpoints" / "4" / "data").glob("process_*.json")) == \
        [f"process_{i}-of-{PROCESSES}.json" for i in range(PROCESSES)]
    trainer = MotionTrainer(resolve_config(config, MotionCache(cache_dir(config, "train"))))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            jax.eval_shape(trainer.init_state, jax.random.key(0)))
    state = checkpointer.restore(steps, abstract)
    checkpointer.close()
    assert int(state.step) == steps
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), state.params, reference.params)


def assert_same_losses(got: list[dict], want: list[dict]) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(want, got):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([b[k] for k in sorted(b)], [a[k] for k in sorted(a)], rtol=1e-5,
                                   err_msg=f"step {a['step']}")
