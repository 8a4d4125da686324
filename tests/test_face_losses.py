"""Stage-1 image losses: VGG19 parity with a torchvision-layout PyTorch stack, SSIM parity with scikit-image,
MS-SSIM behaviour, the multi-scale patch discriminator and its losses, and the identity loss."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from vasa_jax.audio.checkpoint import CheckpointError
from vasa_jax.face.discriminator import (MultiScaleDiscriminator, PatchDiscriminator, feature_matching_loss,
                                         hinge_discriminator_loss, hinge_generator_loss)
from vasa_jax.face.identity import identity_similarity_loss, load_identity_net
from vasa_jax.face.perceptual import (MS_SSIM_WEIGHTS, VGG19Features, load_vgg19, make_perceptual_loss, ms_ssim,
                                      ms_ssim_loss, ms_ssim_scales, ssim, vgg_perceptual_loss)

# torchvision's vgg19 "E" configuration: conv widths, "M" for a 2x2 max-pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_RELU_X_1 = (1, 6, 11, 20, 29)  # Sequential indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1


def _torch_vgg19_features():
    torch.manual_seed(0)
    layers, channels = [], 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            conv = torch.nn.Conv2d(channels, v, 3, padding=1)
            # torchvision's VGG init keeps activations O(1) through 13 layers; random biases test the bias path.
            torch.nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.normal_(conv.bias, std=0.1)
            layers += [conv, torch.nn.ReLU()]
            channels = v
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """(torch features stack, its state dict as numpy with torchvision's keys, .pth path, .safetensors path)."""
    features = _torch_vgg19_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.randn(8, 4)  # a head the loader must ignore (real VGG19: 4096 x 25088)
    folder = tmp_path_factory.mktemp("vgg19")
    torch.save(state, folder / "vgg19.pth")
    numpy_state = {k: v.numpy() for k, v in state.items()}
    save_file(numpy_state, folder / "vgg19.safetensors")
    return features, numpy_state, folder / "vgg19.pth", folder / "vgg19.safetensors"


def _images(seed, shape=(2, 64, 64, 3)):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


_ssim, _ms_ssim = jax.jit(ssim), jax.jit(ms_ssim)  # one compile per shape instead of one per op
_vgg19 = jax.jit(VGG19Features().apply)


def test_vgg19_layout_matches_torchvision_indices(vgg):
    features = vgg[0]
    convs = [i for i, layer in enumerate(features) if isinstance(layer, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert all(isinstance(features[i], torch.nn.ReLU) and isinstance(features[i - 1], torch.nn.Conv2d)
               for i in _RELU_X_1)
    assert all(isinstance(features[i - 2], torch.nn.MaxPool2d) for i in _RELU_X_1[1:])


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_vgg19_parity_with_pytorch(vgg, fmt):
    features, _, pth, safetensors = vgg
    params = load_vgg19(pth if fmt == "pth" else safetensors)
    assert "features_28" in params and "features_30" not in params  # nothing after relu5_1 is computed
    images = _images(0)
    ours = _vgg19({"params": params}, images)

    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    h = (torch.from_numpy(images).permute(0, 3, 1, 2) - mean[:, None, None]) / std[:, None, None]
    theirs = []
    with torch.no_grad():
        for i, layer in enumerate(features[: _RELU_X_1[-1] + 1]):
            h = layer(h)
            if i in _RELU_X_1:
                theirs.append(h.permute(0, 2, 3, 1).numpy())
    assert [o.shape for o in ours] == [(2, 64, 64, 64), (2, 32, 32, 128), (2, 16, 16, 256), (2, 8, 8, 512),
                                       (2, 4, 4, 512)]
    for a, b in zip(ours, theirs):
        assert b.std() > 0.1  # the activations carry signal at every depth, so 1e-4 is a real bound
        np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("problem, expected", [
    ("missing", "1 missing keys: features.34.bias"),
    ("unexpected", "1 unexpected keys: features.37.weight"),
    ("shape", r"keys with the wrong shape: features.5.weight \(128, 32, 3, 3\) \(VGG19 has \(128, 64, 3, 3\)\)"),
    ("corrupt", "cannot be read as safetensors"),
    ("not found", "weights file not found"),
    ("extension", "unknown extension"),
])
def test_vgg19_loader_errors_name_the_file(vgg, tmp_path, problem, expected):
    state = dict(vgg[1])
    path = tmp_path / "weights.safetensors"
    if problem == "missing":
        del state["features.34.bias"]
    elif problem == "unexpected":
        state["features.37.weight"] = np.zeros((1,), np.float32)
    elif problem == "shape":
        state["features.5.weight"] = np.zeros((128, 32, 3, 3), np.float32)
    elif problem == "extension":
        path = tmp_path / "weights.npz"
    if problem == "corrupt":
        path.write_bytes(b"not a safetensors file")
    elif problem != "not found":
        save_file(state, path)
    with pytest.raises(CheckpointError, match=expected) as error:
        load_vgg19(path)
    assert str(path) in str(error.value)


def test_vgg19_pth_needs_torch_and_weights_only(vgg, tmp_path, monkeypatch):
    pickled_module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), pickled_module)  # a whole module: weights_only refuses to unpickle it
    with pytest.raises(CheckpointError, match=r"module.pth: cannot be read by torch.load\(weights_only=True\)"):
        load_vgg19(pickled_module)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(CheckpointError, match="needs torch, which is not installed"):
        load_vgg19(vgg[2])


def test_vgg_perceptual_loss_and_make_perceptual_loss(vgg):
    x, y = _images(1, (2, 32, 32, 3)), _images(2, (2, 32, 32, 3))
    loss = make_perceptual_loss(str(vgg[3]))
    params = load_vgg19(vgg[3])
    value = jax.jit(loss)(x, y)
    ours = _vgg19({"params": params}, np.concatenate([x, y]))
    expected = sum(w * np.mean(np.abs(np.asarray(f[:2]) - np.asarray(f[2:])))
                   for w, f in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), ours))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert float(jax.jit(loss)(x, x)) == 0.0
    grad_x, grad_y = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, y)
    assert np.all(np.isfinite(grad_x)) and np.abs(grad_x).max() > 0
    assert np.all(np.asarray(grad_y) == 0)  # the target side is stop-gradient
    with pytest.raises(ValueError, match="one entry per VGG19 layer"):
        vgg_perceptual_loss(params, x, y, weights=(1.0, 1.0))
    assert make_perceptual_loss("") is ms_ssim_loss
    np.testing.assert_allclose(jax.jit(ms_ssim_loss)(x, y), 1 - np.mean(_reference_ms_ssim(x, y, normalize=True)),
                               rtol=1e-5)


def _pair(seed, shape=(2, 48, 48, 3)):
    """Images with structure (smooth blobs plus texture) and a degraded copy: SSIM well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.uniform(size=shape), sigma=(0, 3, 3, 0)) * 3 - 1 + 0.2 * rng.uniform(size=shape)
    x = np.clip(x, 0, 1).astype(np.float32)
    y = np.clip(gaussian_filter(x, sigma=(0, 1, 1, 0)) + rng.normal(scale=0.1, size=shape), 0, 1).astype(np.float32)
    return x, y


def test_ssim_matches_scikit_image():
    x, y = _pair(0)
    ours = np.asarray(_ssim(x, y))
    reference = [structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0, channel_axis=-1) for a, b in zip(x, y)]
    assert 0.2 < min(reference) and max(reference) < 0.95
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(_ssim(x, x), 1.0, atol=1e-6)


def _reference_ms_ssim(x, y, normalize=False):
    """MS-SSIM in float64 from the paper's formula (scipy Gaussian, valid positions, renormalised weights);
    normalize maps each term t to (t + 1) / 2 first."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    n = ms_ssim_scales(x.shape[1], x.shape[2])
    weights = np.asarray(MS_SSIM_WEIGHTS[:n]) / np.sum(MS_SSIM_WEIGHTS[:n])
    value = np.ones((x.shape[0], x.shape[-1]))
    for scale in range(n):
        if scale:
            b, h, w, c = x.shape
            x, y = (v[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4)) for v in (x, y))
        blur = lambda v: gaussian_filter(v, sigma=(0, 1.5, 1.5, 0), truncate=3.5)[:, 5:-5, 5:-5]  # noqa: E731
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = (2 * cxy + 0.03**2) / (vx + vy + 0.03**2)
        term = (cs if scale < n - 1 else cs * (2 * mx * my + 0.01**2) / (mx**2 + my**2 + 0.01**2)).mean((1, 2))
        value *= np.maximum((term + 1) / 2 if normalize else term, 0) ** weights[scale]
    return value.mean(-1)


@pytest.mark.parametrize("size, scales", [(176, 5), (64, 3), (35, 2), (21, 1)])
def test_ms_ssim_scales_and_reference(size, scales):
    assert ms_ssim_scales(size, size + 50) == scales
    x, y = _pair(size, (1, size, size, 3))
    np.testing.assert_allclose(_ms_ssim(x, y), _reference_ms_ssim(x, y), rtol=0, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda a, b: ms_ssim(a, b, normalize=True))(x, y),
                               _reference_ms_ssim(x, y, normalize=True), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 11x11"):
        ms_ssim(x[:, :10], y[:, :10])


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise_and_blur():
    x, _ = _pair(1, (2, 64, 64, 3))
    np.testing.assert_allclose(_ms_ssim(x, x), 1.0, atol=1e-6)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=x.shape)
    noisy = [_ms_ssim(x, np.clip(x + s * noise, 0, 1).astype(np.float32)) for s in (0.01, 0.03, 0.1, 0.3)]
    blurred = [_ms_ssim(x, gaussian_filter(x, sigma=(0, s, s, 0))) for s in (0.5, 1.0, 2.0, 4.0)]
    for values in (noisy, blurred):
        values = np.stack([np.ones(2)] + values)
        assert np.all(np.diff(values, axis=0) < 0), values
        assert values[-1].max() < 0.8


def test_ms_ssim_gradients_are_finite():
    x, y = _pair(2, (2, 64, 64, 3))
    grad = jax.jit(jax.grad(ms_ssim_loss))
    at_identical = np.asarray(grad(x, x))
    assert np.all(np.isfinite(at_identical)) and np.abs(at_identical).max() < 1e-5  # SSIM peaks at x == y
    assert np.all(np.isfinite(grad(x, y))) and np.abs(grad(x, y)).max() > 0
    # Anti-correlated structure: negative contrast-structure terms, floored instead of raised to a fractional power.
    inverted = 1.0 - x
    assert float(_ms_ssim(x, inverted).max()) < 1e-3
    assert np.all(np.isfinite(grad(x, inverted)))
    constant = np.full_like(x, 0.5)  # zero variance on both sides
    assert np.all(np.isfinite(grad(constant, constant))) and np.all(np.isfinite(grad(constant, x)))


_WIDTHS = (8, 16, 16, 32)


@pytest.fixture(scope="module")
def discriminator():
    model = MultiScaleDiscriminator(scales=3, widths=_WIDTHS, groups=4)
    # rbg: threefry's init takes seconds to compile on the CPU.
    params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 64, 64, 3)))["params"]
    return model, params


def test_discriminator_shapes_per_scale(discriminator):
    model, params = discriminator
    assert sorted(params) == ["scale_0", "scale_1", "scale_2"]
    assert not np.allclose(params["scale_0"]["conv_0"]["kernel"], params["scale_1"]["conv_0"]["kernel"])
    assert "norm_0" not in params["scale_0"] and "norm_1" in params["scale_0"]
    outputs = jax.jit(model.apply)({"params": params}, _images(3))
    for k, (logits, features) in enumerate(outputs):
        size = 64 // 2**k
        assert logits.shape == (2, size // 16, size // 16, 1)
        assert [f.shape for f in features] == [(2, size // 2**(i + 1), size // 2**(i + 1), w)
                                               for i, w in enumerate(_WIDTHS)]
    # Scale 1 is the patch discriminator with scale_1's params on the 2x2 average-pooled image.
    images = _images(3)
    pooled = images.reshape(2, 32, 2, 32, 2, 3).mean((2, 4))
    logits, _ = jax.jit(PatchDiscriminator(_WIDTHS, 4).apply)({"params": params["scale_1"]}, pooled)
    np.testing.assert_allclose(logits, outputs[1][0], atol=1e-6)


def test_hinge_and_feature_matching_on_known_values():
    real = [(jnp.array([2.0, 0.5, -1.0]), [jnp.zeros(2)]), (jnp.array([0.0]), [jnp.ones(3)])]
    fake = [(jnp.array([-2.0, 0.0, 1.0]), [jnp.full(2, 3.0)]), (jnp.array([-0.5]), [jnp.ones(3)])]
    # scale 0: mean(0, 0.5, 2) + mean(0, 1, 2) = 5/6 + 1; scale 1: 1 + 0.5.
    np.testing.assert_allclose(hinge_discriminator_loss(real, fake), ((5 / 6 + 1) + 1.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(hinge_generator_loss(fake), (-(-1 / 3) + 0.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(feature_matching_loss(real, fake), (3.0 + 0.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(feature_matching_loss(real, real), 0.0)
    grad_real, grad_fake = jax.grad(feature_matching_loss, argnums=(0, 1))(real, fake)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grad_real))  # real features are targets
    np.testing.assert_allclose(grad_fake[0][1][0], [0.25, 0.25])  # mean over 2 elements, then over 2 layers


def test_discriminator_gradients(discriminator):
    model, params = discriminator
    real, fake = _images(4), _images(5)

    def loss(p, fake):  # every loss taken from the discriminator, so every parameter is reached (the hinge D loss
        # alone gives the final bias no gradient while all logits lie in (-1, 1): -1 + 1 = 0)
        both = model.apply({"params": p}, jnp.concatenate([real, fake]))  # one pass: half the compile time
        real_out, fake_out = ([(logits[i], [f[i] for f in features]) for logits, features in both]
                              for i in (slice(0, 2), slice(2, 4)))
        return (hinge_discriminator_loss(real_out, fake_out) + hinge_generator_loss(fake_out)
                + feature_matching_loss(real_out, fake_out))

    grads, grad_fake = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, fake)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0, jax.tree_util.keystr(path)
    assert np.all(np.isfinite(grad_fake)) and np.abs(grad_fake).max() > 0
    outputs = jax.jit(model.apply)({"params": params}, real)
    np.testing.assert_allclose(feature_matching_loss(outputs, outputs), 0.0)


def test_identity_similarity_loss():
    embed = lambda images: images.reshape(images.shape[0], -1) - 0.5  # noqa: E731
    a, b = _images(6, (3, 8, 8, 3)), _images(7, (3, 8, 8, 3))
    loss = jax.jit(lambda x, y: identity_similarity_loss(embed, x, y))
    assert abs(float(loss(a, a))) < 1e-6
    np.testing.assert_allclose(loss(a, 1.0 - a), 2.0, rtol=1e-6)  # opposite embeddings
    cos = [np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v) for u, v in zip(embed(a), embed(b))]
    np.testing.assert_allclose(loss(a, b), 1 - np.mean(cos), rtol=1e-5)
    grad = jax.jit(jax.grad(loss))(a, np.full_like(a, 0.5))  # against a zero embedding
    assert np.all(np.isfinite(grad))
    with pytest.raises(NotImplementedError, match="identity loss weight is 0"):
        load_identity_net("arcface.pth")
