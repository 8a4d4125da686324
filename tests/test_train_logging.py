"""Logging: metrics.jsonl + TensorBoard events, PNG grids, the image grid layout, the progress bar."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from vasa_jax.train import MetricWriter, Progress, image_grid


def test_image_grid_layout():
    rng = np.random.default_rng(0)
    source = rng.uniform(size=(10, 6, 5, 3)).astype(np.float32)  # float in [0, 1]
    driver = rng.integers(0, 256, size=(10, 6, 5, 3), dtype=np.uint8)
    grid = image_grid([source, driver, source * 2 - 0.5], max_items=8)
    assert grid.dtype == np.uint8 and grid.shape == (8 * 6, 3 * 5, 3)
    np.testing.assert_array_equal(grid[6:12, 0:5], np.round(source[1] * 255).astype(np.uint8))  # item 1, column 0
    np.testing.assert_array_equal(grid[42:48, 5:10], driver[7])  # item 7, column 1
    third = grid[:, 10:15]
    assert third.min() == 0 and third.max() == 255  # out-of-range floats are clipped
    assert image_grid([source[:2]]).shape == (12, 5, 3)
    with pytest.raises(ValueError, match="one shape"):
        image_grid([source, source[:, :4]])


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_metric_writer_files(tmp_path):
    writer = MetricWriter(str(tmp_path), enabled=True)
    writer.write_scalars(1, {"loss": np.float32(2.5), "learning_rate": 1e-3})
    writer.write_scalars(2, {"loss": 1.5})
    writer.write_event(2, "diverged", metrics=["loss"])
    grid = image_grid([np.zeros((3, 4, 5, 3)), np.ones((3, 4, 5, 3))])
    path = writer.write_images(2, "recon", grid)
    writer.close()

    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [(r["step"], r.get("loss")) for r in records] == [(1, 2.5), (2, 1.5), (2, None)]
    assert records[0]["learning_rate"] == 1e-3 and all(r["time"] > 1e9 for r in records)
    assert records[2]["event"] == "diverged" and records[2]["metrics"] == ["loss"]
    events = [f for f in os.listdir(tmp_path / "logs") if f.startswith("events.out.tfevents")]
    assert events and os.path.getsize(tmp_path / "logs" / events[0]) > 100
    assert path == str(tmp_path / "images" / "recon_0000002.png")
    with Image.open(path) as im:
        png = np.asarray(im)
    assert png.shape == (12, 10, 3)
    np.testing.assert_array_equal(png, grid)

    # A run resumed from step 1 drops the later records, which it will write again.
    MetricWriter(str(tmp_path), enabled=True, resume_step=1).close()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1]


def test_disabled_writer_writes_nothing(tmp_path):
    writer = MetricWriter(str(tmp_path / "w"), enabled=False)
    writer.write_scalars(1, {"loss": 1.0})
    assert writer.write_images(1, "x", np.zeros((2, 2, 3), np.uint8)) is None
    writer.close()
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("quiet", [True, False])
def test_progress_bar(capsys, quiet):
    bar = Progress(10, initial=2, quiet=quiet)
    bar.update(3)
    bar.set_loss(0.125)
    bar.close()
    err = capsys.readouterr().err
    if quiet:
        assert err == ""
    else:
        assert "5/10" in err and "loss=0.125" in err and "step/s" in err
