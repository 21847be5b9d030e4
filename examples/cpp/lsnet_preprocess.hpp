// lsnet_preprocess.hpp - LSNet input preprocessing in portable C++17, identical to lsnet-deploy's Python.
//
// Feed it 8-bit RGB pixels and the recipe from the artifact's metadata (input_size, mean, std, crop_pct,
// interpolation); it returns the NCHW float32 tensor the model was trained on:
//   1. resize so the short side is floor(size / crop_pct), aspect kept (timm eval / torchvision Resize),
//      with Pillow's bicubic (or bilinear) filter re-implemented here to the bit - other libraries'
//      "bicubic" (OpenCV INTER_CUBIC, Android Bitmap scaling) do not antialias and drift by a few levels;
//   2. centre crop to input_size;
//   3. x / 255, minus mean, divided by std, in float32, RGB order, NCHW.
// No dependencies. Decode the file yourself (stb_image, libjpeg, OpenCV - then convert BGR to RGB!) and
// apply the EXIF orientation before calling preprocess().
//
// Checked against the Python implementation by tests/test_predict/test_examples.py (bit-identical).

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lsnet {

struct Recipe {
    int height = 224, width = 224;                  // metadata "input_size" = [H, W]
    float mean[3] = {0.485f, 0.456f, 0.406f};        // metadata "mean"
    float std[3] = {0.229f, 0.224f, 0.225f};         // metadata "std"
    double crop_pct = 0.9;                           // metadata "crop_pct"
    std::string interpolation = "bicubic";           // metadata "interpolation": bicubic or bilinear
};

struct RgbImage {                                    // 8-bit RGB, row-major, 3 bytes per pixel
    int width = 0, height = 0;
    std::vector<uint8_t> pixels;
};

namespace detail {

constexpr int kPrecisionBits = 32 - 8 - 2;           // Pillow's fixed-point precision for 8-bit images

inline double bicubic(double x) {                    // Keys cubic with a = -0.5, as Pillow
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

inline double bilinear(double x) {
    x = std::fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

// Per output pixel: first input index, tap count, and fixed-point weights (Pillow's precompute_coeffs).
struct Taps {
    int ksize = 0;
    std::vector<int> first, count;
    std::vector<int32_t> weights;                    // ksize per output pixel
};

inline Taps compute_taps(int in_size, int out_size, bool cubic) {
    const double support_base = cubic ? 2.0 : 1.0;
    const double scale = static_cast<double>(in_size) / out_size;
    const double filter_scale = std::max(scale, 1.0);  // widen the filter when shrinking: antialiasing
    const double support = support_base * filter_scale;
    Taps taps;
    taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    taps.first.resize(out_size);
    taps.count.resize(out_size);
    taps.weights.assign(static_cast<size_t>(out_size) * taps.ksize, 0);
    std::vector<double> w(taps.ksize);
    for (int o = 0; o < out_size; ++o) {
        const double center = (o + 0.5) * scale;
        int lo = static_cast<int>(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = static_cast<int>(center + support + 0.5);
        if (hi > in_size) hi = in_size;
        const int n = hi - lo;
        double total = 0.0;
        for (int i = 0; i < n; ++i) {
            const double t = (i + lo - center + 0.5) / filter_scale;
            w[i] = cubic ? bicubic(t) : bilinear(t);
            total += w[i];
        }
        for (int i = 0; i < n; ++i) {
            const double normalized = total != 0.0 ? w[i] / total : w[i];
            const double fixed = normalized * (1 << kPrecisionBits);
            taps.weights[static_cast<size_t>(o) * taps.ksize + i] =
                static_cast<int32_t>(normalized < 0 ? fixed - 0.5 : fixed + 0.5);
        }
        taps.first[o] = lo;
        taps.count[o] = n;
    }
    return taps;
}

inline uint8_t clip8(int32_t acc) {
    const int32_t v = acc >> kPrecisionBits;         // arithmetic shift: floor, as Pillow
    return static_cast<uint8_t>(std::min(255, std::max(0, v)));
}

}  // namespace detail

// Resize with Pillow's separable two-pass algorithm (horizontal, then vertical; a pass is skipped when
// that side keeps its size). Identical to PIL.Image.resize(..., BICUBIC/BILINEAR) on RGB images.
inline RgbImage resize(const RgbImage& in, int out_w, int out_h, bool cubic) {
    RgbImage cur = in;
    if (out_w != in.width) {
        const detail::Taps t = detail::compute_taps(in.width, out_w, cubic);
        RgbImage tmp{out_w, in.height, std::vector<uint8_t>(static_cast<size_t>(out_w) * in.height * 3)};
        for (int y = 0; y < in.height; ++y) {
            const uint8_t* row = &in.pixels[static_cast<size_t>(y) * in.width * 3];
            for (int x = 0; x < out_w; ++x) {
                const int32_t* k = &t.weights[static_cast<size_t>(x) * t.ksize];
                for (int c = 0; c < 3; ++c) {
                    int32_t acc = 1 << (detail::kPrecisionBits - 1);
                    for (int i = 0; i < t.count[x]; ++i) acc += row[(t.first[x] + i) * 3 + c] * k[i];
                    tmp.pixels[(static_cast<size_t>(y) * out_w + x) * 3 + c] = detail::clip8(acc);
                }
            }
        }
        cur = std::move(tmp);
    }
    if (out_h != cur.height) {
        const detail::Taps t = detail::compute_taps(cur.height, out_h, cubic);
        RgbImage tmp{cur.width, out_h, std::vector<uint8_t>(static_cast<size_t>(cur.width) * out_h * 3)};
        for (int y = 0; y < out_h; ++y) {
            const int32_t* k = &t.weights[static_cast<size_t>(y) * t.ksize];
            for (int x = 0; x < cur.width; ++x) {
                for (int c = 0; c < 3; ++c) {
                    int32_t acc = 1 << (detail::kPrecisionBits - 1);
                    for (int i = 0; i < t.count[y]; ++i)
                        acc += cur.pixels[(static_cast<size_t>(t.first[y] + i) * cur.width + x) * 3 + c] * k[i];
                    tmp.pixels[(static_cast<size_t>(y) * cur.width + x) * 3 + c] = detail::clip8(acc);
                }
            }
        }
        cur = std::move(tmp);
    }
    return cur;
}

// The size the image is resized to before the centre crop (square inputs: torchvision Resize(int)
// sizing - the short side becomes floor(size / crop_pct), the long side is truncated).
inline void resized_size(int w, int h, const Recipe& r, int* out_w, int* out_h) {
    if (r.height != r.width)
        throw std::invalid_argument("this sample handles square inputs; see preprocess.py for H != W");
    const int target = static_cast<int>(std::floor(r.height / r.crop_pct));
    if (w <= h) {
        *out_w = target;
        *out_h = static_cast<int>(static_cast<double>(target) * h / w);
    } else {
        *out_h = target;
        *out_w = static_cast<int>(static_cast<double>(target) * w / h);
    }
}

// RGB pixels -> NCHW float32 of shape (3, H, W), ready for the model (batch of one: prepend N = 1).
inline std::vector<float> preprocess(const RgbImage& image, const Recipe& r) {
    if (r.interpolation != "bicubic" && r.interpolation != "bilinear")
        throw std::invalid_argument("interpolation " + r.interpolation + " is not implemented here");
    int rw = 0, rh = 0;
    resized_size(image.width, image.height, r, &rw, &rh);
    const RgbImage resized = resize(image, rw, rh, r.interpolation == "bicubic");
    if (rw < r.width || rh < r.height) throw std::invalid_argument("crop_pct > 1 (padding) is not handled here");
    // torchvision CenterCrop: int(round((size - crop) / 2.0)), Python rounds halves to even
    auto offset = [](int size, int crop) { return static_cast<int>(std::nearbyint((size - crop) / 2.0)); };
    const int top = offset(rh, r.height), left = offset(rw, r.width);
    std::vector<float> out(static_cast<size_t>(3) * r.height * r.width);
    for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < r.height; ++y) {
            for (int x = 0; x < r.width; ++x) {
                const uint8_t v = resized.pixels[(static_cast<size_t>(top + y) * rw + left + x) * 3 + c];
                const float scaled = static_cast<float>(v) / 255.0f;
                out[(static_cast<size_t>(c) * r.height + y) * r.width + x] = (scaled - r.mean[c]) / r.std[c];
            }
        }
    }
    return out;
}

}  // namespace lsnet
