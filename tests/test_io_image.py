"""Image loading: every Pillow mode to RGB uint8, and clear errors for bad files."""

import numpy as np
import pytest
from PIL import Image

from vasa_jax.io import MediaError, load_image


def test_rgb_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), image)


def test_rgba_is_composited_on_neutral_grey(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:2, ..., 3] = 255  # top half opaque, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [128, 128, 128])


def test_palette_greyscale_and_cmyk(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (8, 8, 3)
    pal = Image.fromarray(rgb).convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    assert load_image(tmp_path / "pt.png").shape == (8, 8, 3)
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    out = load_image(tmp_path / "l.png")
    np.testing.assert_array_equal(out[..., 0], grey)
    np.testing.assert_array_equal(out[..., 2], grey)
    Image.fromarray(np.stack([grey, grey], -1), "LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (8, 8, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    assert np.abs(load_image(tmp_path / "c.jpg").astype(int) - rgb).mean() < 40


def test_16_bit_greyscale_is_scaled(tmp_path):
    values = np.linspace(0, 65535, 16).astype(np.uint16).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert np.all(np.diff(out[..., 0].ravel().astype(int)) >= 0)


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    pil.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (20, 10, 3)


def test_arrays_are_accepted():
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    out = load_image(np.full((5, 6, 3), 0.5, np.float32))
    assert out.dtype == np.uint8 and out[0, 0, 0] == 128
    with pytest.raises(MediaError, match="shape"):
        load_image(np.zeros((5, 6, 2), np.uint8))


@pytest.mark.parametrize("name, content, problem", [
    ("missing.png", None, "file not found"),
    (".", None, "is a directory"),
    ("empty.png", b"", "empty"),
    ("notes.png", b"not an image", "not an image"),
])
def test_bad_files_raise_media_error_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=problem) as info:
        load_image(path)
    assert str(path).rstrip("/.") in str(info.value)


def test_truncated_image(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.png: image data is truncated or corrupt"):
        load_image(tmp_path / "cut.png")


def test_an_image_made_to_exhaust_memory_is_refused(tmp_path):
    from vasa_jax.io import MediaError, load_image

    (tmp_path / "bomb.ppm").write_bytes(b"P6\n20000 20000\n255\n" + bytes(100))  # 400 M pixels declared
    with pytest.raises(MediaError, match="bomb.ppm: image is too large to load safely"):
        load_image(tmp_path / "bomb.ppm")
