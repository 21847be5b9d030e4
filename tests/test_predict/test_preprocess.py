"""Preprocessing against timm's evaluation transform (the reference in conftest.py), and the pictures users have."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lsnet_deploy.errors import UsageError
from lsnet_deploy.preprocess import (Preprocessing, draft_size, load_rgb, normalize, preprocess, preprocess_one,
                                     resize_and_crop, resized_shape)

from .conftest import synthetic_photo

LSNET = Preprocessing(input_size=(224, 224))  # LSNet's configuration: bicubic, crop 0.9, ImageNet mean/std

# (height, width): landscape, portrait, odd crop offsets, already the resize size, upscaling, extreme aspect
SIZES = [(375, 500), (500, 375), (333, 501), (248, 248), (249, 250), (90, 120), (141, 1000), (1000, 141)]


@pytest.mark.parametrize("height, width", SIZES)
def test_matches_timm_eval_transform_for_lsnet(timm_eval, height, width):
    image = synthetic_photo(height, width, seed=height + width)
    expected = timm_eval(image, 224, crop_pct=0.9, interpolation="bicubic").numpy()
    actual = preprocess_one(image, LSNET)
    assert actual.dtype == np.float32 and actual.shape == (3, 224, 224)
    # same Pillow resize, same float32 operations: the values are bit-identical, not merely close
    np.testing.assert_array_equal(actual, expected)


def test_matches_reference_at_the_tiny_models_size(timm_eval):
    recipe = Preprocessing(input_size=(128, 128))
    assert recipe.resize_size == (142, 142)  # floor(128 / 0.9)
    image = synthetic_photo(300, 400, seed=7)
    np.testing.assert_array_equal(preprocess_one(image, recipe), timm_eval(image, 128).numpy())


def test_rectangular_input_uses_timms_keep_ratio_sizing_with_the_recipes_filter(timm_eval):
    recipe = Preprocessing(input_size=(192, 256))
    image = synthetic_photo(480, 500, seed=11)
    assert resized_shape(500, 480, recipe) == (284, 273)  # ratio = min(480/213, 500/284), sides rounded
    expected = timm_eval(image, (192, 256), keep_ratio_interpolation="bicubic").numpy()
    np.testing.assert_array_equal(preprocess_one(image, recipe), expected)


def test_other_recipes_follow_the_metadata(timm_eval):
    image = synthetic_photo(300, 420, seed=5)
    recipe = Preprocessing(input_size=(160, 160), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), crop_pct=0.875,
                           interpolation="bilinear")
    expected = timm_eval(image, 160, crop_pct=0.875, interpolation="bilinear", mean=(0.5,) * 3,
                         std=(0.25, 0.5, 1.0)).numpy()
    np.testing.assert_array_equal(preprocess_one(image, recipe), expected)


def test_bgr_and_nhwc_recipes_reorder_the_same_values():
    image = synthetic_photo(200, 260, seed=9)
    rgb = preprocess_one(image, LSNET)
    bgr = preprocess_one(image, LSNET.replace(channel_order="BGR", mean=LSNET.mean[::-1], std=LSNET.std[::-1]))
    np.testing.assert_array_equal(bgr, rgb[::-1])
    nhwc = preprocess_one(image, LSNET.replace(layout="NHWC"))
    np.testing.assert_array_equal(nhwc, rgb.transpose(1, 2, 0))


def test_crop_larger_than_the_image_pads_with_zero_pixels():
    recipe = Preprocessing(input_size=(64, 64), crop_pct=1.25, mean=(0, 0, 0), std=(1, 1, 1))
    out = preprocess_one(Image.new("RGB", (100, 100), (255, 255, 255)), recipe)  # resized to 51, padded to 64
    assert out.shape == (3, 64, 64)
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 0.0] and out[:, 32, 32].tolist() == [1.0, 1.0, 1.0]


def test_batch_is_stacked_samples(photos):
    batch = preprocess(photos, LSNET)
    assert batch.shape == (len(photos), 3, 224, 224)
    np.testing.assert_array_equal(batch[1], preprocess_one(photos[1], LSNET))


# ------------------------------------------------------------------------------------------ inputs


def test_path_pil_and_uint8_array_give_the_same_tensor(photos):
    path = photos[2]  # PNG: lossless, so the array is the decoded file
    pil = Image.open(path)
    array = np.asarray(pil.convert("RGB"))
    expected = preprocess_one(path, LSNET)
    np.testing.assert_array_equal(preprocess_one(pil, LSNET), expected)
    np.testing.assert_array_equal(preprocess_one(array, LSNET), expected)


def test_exif_orientation_is_applied(tmp_path, timm_eval):
    upright = synthetic_photo(300, 200, seed=21)  # portrait as the viewer shows it
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone writes: landscape pixels + tag 6
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.png"
    stored.save(path, exif=exif)
    assert load_rgb(path).size == (200, 300)
    np.testing.assert_array_equal(preprocess_one(path, LSNET), timm_eval(upright, 224).numpy())
    assert load_rgb(path, exif_transpose=False).size == (300, 200)


def test_16_bit_grayscale_is_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "depth16.png"
    Image.fromarray(ramp).save(path)
    rgb = np.asarray(load_rgb(path))
    expected = np.round(ramp / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(rgb[:, :, 0], expected)
    np.testing.assert_array_equal(rgb[:, :, 2], expected)
    assert 100 < rgb.mean() < 155  # Pillow's plain convert("RGB") would give nearly all 255


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I", "F"])
def test_every_common_mode_becomes_rgb(tmp_path, mode):
    base = synthetic_photo(60, 80, seed=3)
    image = base.convert(mode) if mode not in ("I", "F") else base.convert("L").convert(mode)
    out = load_rgb(image)
    assert out.mode == "RGB" and out.size == (80, 60)
    if mode in ("L", "I", "F"):  # 8-bit values kept as they are
        np.testing.assert_array_equal(np.asarray(out)[:, :, 1], np.asarray(base.convert("L")))
    if mode == "RGBA":  # alpha dropped, as timm's loader does
        np.testing.assert_array_equal(np.asarray(out), np.asarray(base))


def test_fast_decode_only_changes_pixels_slightly(tmp_path):
    path = tmp_path / "camera.jpg"
    synthetic_photo(1800, 2400, seed=8).save(path, quality=90)
    exact = preprocess_one(path, LSNET)
    fast = preprocess_one(path, LSNET, fast_decode=True)
    assert draft_size(LSNET) == (496, 496)  # twice the 248 resize, so the bicubic filter still antialiases
    assert load_rgb(path, draft_size=draft_size(LSNET)).size == (1200, 900)  # decoded at half scale
    change = np.abs(fast - exact)
    assert 0 < change.mean() < 0.017  # standardized units: one 8-bit level is 1 / (255 * 0.225) = 0.017
    assert change.max() < 0.2


# ---------------------------------------------------------------------------------------- bad input


def test_unreadable_files_raise_one_clear_usage_error(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    synthetic_photo(200, 200).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:400])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = {text: "not an image file", truncated: "corrupt or truncated", empty: "not an image file",
             tmp_path / "missing.jpg": "no such file", tmp_path: "is a directory"}
    for path, message in cases.items():
        with pytest.raises(UsageError, match=message) as info:
            load_rgb(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("array, message", [
    (np.zeros((10, 10, 2), np.uint8), "must be \\(H, W\\)"),
    (np.zeros((10, 10, 3), np.float64), "must be uint8"),
])
def test_arrays_that_are_not_pictures_are_refused(array, message):
    with pytest.raises(UsageError, match=message):
        load_rgb(array)


@pytest.mark.parametrize("fields, message", [
    ({"interpolation": "bicubc"}, "did you mean 'bicubic'"),
    ({"std": (0.2, 0.0, 0.2)}, "std values must be positive"),
    ({"mean": (0.5, 0.5)}, "3 values"),
    ({"crop_mode": "border"}, "not supported"),
    ({"input_size": (0, 224)}, "positive integers"),
])
def test_bad_recipes_are_refused(fields, message):
    with pytest.raises(UsageError, match=message):
        Preprocessing(**{"input_size": (224, 224), **fields})


def test_from_metadata_needs_size_mean_and_std():
    with pytest.raises(UsageError, match="input_size, mean, std"):
        Preprocessing.from_metadata({})
    recipe = Preprocessing.from_metadata({"input_size": [128, 160]}, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert recipe.input_size == (128, 160) and recipe.crop_pct == 0.9 and recipe.interpolation == "bicubic"


def test_normalize_rejects_non_rgb_images():
    with pytest.raises(UsageError, match="RGB image"):
        normalize(np.zeros((8, 8), np.uint8), LSNET)
    assert resize_and_crop(Image.new("RGB", (300, 400)), LSNET).size == (224, 224)
