"""python -m vasa_jax.bench on the tiny config (--quick): a smoke test that every figure is there and sane.
The figures themselves (toy and base, CPU and GPU) come from running it by hand; no timing is asserted."""

import json
import math

from vasa_jax import bench


def _numbers(tree, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _numbers(value, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def test_quick_run_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--config", "configs/tiny.py", "--quick", "--steps", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())

    for path, value in _numbers(result):
        assert math.isfinite(value), path
        # Compile times may round to nothing for a program compiled before; a load average may be 0.
        if "compile_seconds" not in path and "load_average" not in path and "backlog" not in path:
            assert value > 0, path

    for part in ("encode", "audio"):
        assert {"seconds", "best_seconds", "compile_seconds"} <= set(result[part]), part
    assert result["encode"]["gflops"] > 0 and result["audio"]["seconds_per_audio_second"] > 0
    motion = result["motion"]["10"]
    assert motion["steps"] == 10 and motion["passes"] == 3  # default guidance: audio and gaze passes
    window_gflops = motion["gflops_per_frame"] * motion["window_frames"]
    assert window_gflops >= 0.9 * 10 * motion["gflops_per_step"]  # every denoising step counted, not the loop once

    decode = result["decode"]
    assert set(decode["batches"]) | set(decode["skipped"]) == {"1", "4"}  # --quick: batches up to 4
    assert str(decode["best_batch"]) in decode["batches"]
    for timing in decode["batches"].values():
        assert timing["frames_per_second"] > 0 and timing["gflops_per_frame"] > 0

    assert result["offline"]["frames"] == 50  # 2 s at 25 fps
    stream = result["stream"]
    assert stream["frames"] == 50
    assert stream["first_frame_live_seconds"] > stream["window_audio_arrival_seconds"] >= 16 / 25  # the window
    memory = result["memory"]
    assert [x["frames"] for x in memory["by_audio_length"]] == [50, 150]
    assert memory["peak"]["bytes"] > 0 and memory["growth_ratio"] > 0
    assert set(result["flops"]) == {"encode_gflops_per_portrait", "decode_gflops_per_frame", "motion_gflops_per_frame"}
    live = result["realtime"]  # the online mode with speech at its real pace (--quick: 2 s)
    from vasa_jax.motion.config import MotionConfig

    default_steps = MotionConfig().online_sample_steps  # the model's own online steps, as nothing asks for others
    assert live["frames"] == 50 and (live["hop"], live["lookahead"]) == (3, 1) and live["steps"] == default_steps
    assert live["first_frame_seconds"] > live["wait_for_speech_seconds"] == 3 / 25
    assert live["p95_seconds"] >= live["p50_seconds"] > 0 and isinstance(live["keeps_up"], bool)
    assert live["gflops_per_hop"] > 0 and set(live["gpu_seconds_per_hop_at_peak"]) >= {"H100", "RTX 4090"}
    peak = result["device"]["peak"]
    assert "fp32_tflops" in peak or peak["reason"]

    printed = capsys.readouterr().out
    assert "VASA-1" in printed and "45 frames/s offline" in printed and ">= 25 frames/s" in printed


def test_unknown_config_is_a_one_line_error(capsys):
    assert bench.main(["--config", "configs/no_such_config.py"]) == 2
    assert "no_such_config.py" in capsys.readouterr().err
