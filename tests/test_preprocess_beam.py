"""Preprocessing on Apache Beam equals the local pool byte for byte; one run at a time holds an output folder,
and a run killed on one runner resumes on the other (vasa_jax.data.preprocess, beam_pipeline, folder_lock), on
a few short toy videos, a corrupt file and a video without audio.

Beam runs on its in-process FnApiRunner: the engine Beam's DirectRunner falls back to when its Prism runner
cannot be downloaded, and the tests touch no network.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vasa_jax.data import preprocess
from vasa_jax.data.folder_lock import LOCK_NAME, FolderBusy, folder_lock
from vasa_jax.data.preprocess import Settings
from vasa_jax.data.shards import MANIFEST
from vasa_jax.data.toyworld import make_clip
from vasa_jax.io import write_video

SETTINGS = Settings(size=64, detect_size=192, min_seconds=1.0, min_face=48)
CLI_SETTINGS = ["--size", "64", "--detect-size", "192", "--min-seconds", "1", "--min-face", "48"]
ACCEPTED = {"id_a/v1/00001.mp4": (0, 10), "id_a/v2/00001.mp4": (1, 10), "id_b/v1/00001.mp4": (2, 12)}
REJECTED = {"id_c/v1/00001.mp4": "undecodable", "id_d/v1/00001.mp4": "no_audio"}
SECONDS = 1.2


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for relpath, (seed, person) in ACCEPTED.items():
        (root / relpath).parent.mkdir(parents=True)
        make_clip(seed, identity=person, seconds=SECONDS, size=128).write(root / relpath)
    for relpath in REJECTED:
        (root / relpath).parent.mkdir(parents=True)
    (root / "id_c/v1/00001.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    write_video(root / "id_d/v1/00001.mp4", make_clip(3, identity=14, seconds=SECONDS, size=128).frames, fps=25)
    for npz in root.rglob("*.truth.npz"):
        npz.unlink()
    return root


@pytest.fixture(scope="module")
def pool(videos, tmp_path_factory):
    """The local pool's output (two worker processes): (folder, manifest)."""
    out = tmp_path_factory.mktemp("pool") / "shards"
    return out, preprocess.preprocess(videos, out, SETTINGS, workers=2, quiet=True)


def assert_same_output(out: Path, reference: Path) -> None:
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # no work/, no lock file left
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_beam_writes_the_pools_shards_and_manifest(videos, pool, tmp_path, capsys):
    out = tmp_path / "beam"
    manifest = preprocess.preprocess(videos, out, SETTINGS, runner="FnApiRunner", report_throughput=True,
                                     quiet=True)
    assert manifest == pool[1]
    assert_same_output(out, pool[0])
    rejects = {r["source"]: r for r in manifest["rejects"]}
    assert {source: r["reason"] for source, r in rejects.items()} == REJECTED
    assert "no audio track" in rejects["id_d/v1/00001.mp4"]["detail"] and rejects["id_c/v1/00001.mp4"]["detail"]
    assert manifest["counts"]["clips"] == len(ACCEPTED) and manifest["splits"]["heldout"]["clips"] > 0
    report = capsys.readouterr().out
    assert f"processed {len(ACCEPTED) + len(REJECTED)} videos" in report and "FnApiRunner" in report
    assert "per worker" in report and "worker-hours" in report


def test_a_second_run_is_refused_and_a_killed_run_resumes(videos, pool, tmp_path, capsys, monkeypatch):
    out = tmp_path / "shards"
    argv = ["--input", str(videos), "--output", str(out), *CLI_SETTINGS]
    holder = subprocess.Popen([sys.executable, "-m", "vasa_jax.data.preprocess", *argv, "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not len(list((out / "work").glob("*.json"))) > 1:  # run.json and one finished video
            assert holder.poll() is None, holder.stderr.read()
            assert time.monotonic() < deadline, "the first run finished no video within 60 s"
            time.sleep(0.05)
        assert preprocess.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert str(out) in err and f"pid {holder.pid} on {socket.gethostname()}, started " in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not (out / MANIFEST).exists() and (out / LOCK_NAME).exists()  # killed mid-run, its lock file left
    calls = []
    real = preprocess.run_task
    monkeypatch.setattr(preprocess, "run_task", lambda processor, task: calls.append(task) or real(processor, task))
    manifest = preprocess.preprocess(videos, out, SETTINGS, runner="FnApiRunner", quiet=True)  # the other runner
    assert 0 < len(calls) < len(ACCEPTED) + len(REJECTED)  # resumed, not restarted
    assert manifest == pool[1]
    assert_same_output(out, pool[0])


def test_lock_is_exclusive_and_released(tmp_path):
    with folder_lock(tmp_path, "test run"):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(FolderBusy, match=f"in use by another test run \\(pid {os.getpid()} "):
            with folder_lock(tmp_path, "test run"):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    with folder_lock(tmp_path):  # free again
        pass


def test_runner_mistakes_are_one_line(videos, tmp_path, capsys, monkeypatch):
    argv = ["--input", str(videos), "--output", str(tmp_path / "o")]
    assert preprocess.main([*argv, "--runner", "NoSuchRunner"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Unexpected pipeline runner: NoSuchRunner" in err
    assert preprocess.main([*argv, "--runner", "FnApiRunner", "--workers", "2"]) == 2
    assert "--direct_num_workers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        preprocess.main([*argv, "--direct_num_workers", "2"])
    assert exit_.value.code == 2 and "need --runner" in capsys.readouterr().err
    # Without Apache Beam installed: one line saying how to install it.
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    monkeypatch.delitem(sys.modules, "vasa_jax.data.beam_pipeline", raising=False)
    assert preprocess.main([*argv, "--runner", "DirectRunner"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[beam]"' in err
    assert not (tmp_path / "o").exists()
