// LsnetPreprocess.java - LSNet input preprocessing in plain Java (no Android classes), identical to
// lsnet-deploy's Python: works on the ARGB ints Bitmap.getPixels() returns.
//
// Steps, from the artifact's metadata (input_size, mean, std, crop_pct, interpolation):
//   1. resize so the short side is floor(size / crop_pct), aspect kept, with Pillow's bicubic filter
//      re-implemented here to the bit (Bitmap.createScaledBitmap is bilinear without antialiasing and
//      drifts by several levels on downscaled photos);
//   2. centre crop to input_size;
//   3. x / 255, minus mean, divided by std, float32, RGB, NCHW.
// Apply the EXIF orientation (androidx.exifinterface) before calling it.
//
// Checked against the Python implementation by tests/test_predict/test_examples.py (bit-identical).

package org.lsnet.deploy;

public final class LsnetPreprocess {

    /** The preprocessing recipe; fill it from the artifact metadata (see LsnetClassifier.kt). */
    public static final class Recipe {
        public int height = 224, width = 224;
        public float[] mean = {0.485f, 0.456f, 0.406f};
        public float[] std = {0.229f, 0.224f, 0.225f};
        public double cropPct = 0.9;
        public String interpolation = "bicubic";
    }

    private static final int PRECISION_BITS = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images

    private LsnetPreprocess() {}

    /**
     * ARGB pixels (row-major, as Bitmap.getPixels) -> float32 NCHW (3 * H * W) for Tensor.fromBlob.
     */
    public static float[] preprocess(int[] argb, int width, int height, Recipe r) {
        if (r.height != r.width) {
            throw new IllegalArgumentException("this sample handles square inputs");
        }
        boolean cubic = "bicubic".equals(r.interpolation);
        if (!cubic && !"bilinear".equals(r.interpolation)) {
            throw new IllegalArgumentException("interpolation " + r.interpolation + " is not implemented here");
        }
        int target = (int) Math.floor(r.height / r.cropPct);
        int rw, rh;
        if (width <= height) {
            rw = target;
            rh = (int) ((double) target * height / width);
        } else {
            rh = target;
            rw = (int) ((double) target * width / height);
        }
        int[][] planes = new int[3][width * height];
        for (int i = 0; i < argb.length; i++) {
            planes[0][i] = (argb[i] >> 16) & 0xFF;
            planes[1][i] = (argb[i] >> 8) & 0xFF;
            planes[2][i] = argb[i] & 0xFF;
        }
        int top = (int) Math.rint((rh - r.height) / 2.0);  // rint rounds halves to even, as Python's round
        int left = (int) Math.rint((rw - r.width) / 2.0);
        float[] out = new float[3 * r.height * r.width];
        for (int c = 0; c < 3; c++) {
            int[] plane = planes[c];
            int w = width, h = height;
            if (rw != w) {
                plane = resizeRows(plane, w, h, rw, cubic);
                w = rw;
            }
            if (rh != h) {
                plane = resizeColumns(plane, w, h, rh, cubic);
                h = rh;
            }
            for (int y = 0; y < r.height; y++) {
                for (int x = 0; x < r.width; x++) {
                    float scaled = plane[(top + y) * w + left + x] / 255.0f;
                    out[(c * r.height + y) * r.width + x] = (scaled - r.mean[c]) / r.std[c];
                }
            }
        }
        return out;
    }

    /** Per output pixel: first source index, tap count, ksize fixed-point weights. */
    private static final class Taps {
        int ksize;
        int[] first, count, weights;
    }

    private static double cubic(double x) {
        final double a = -0.5;
        x = Math.abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    private static Taps taps(int inSize, int outSize, boolean bicubic) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);  // widen the filter when shrinking: antialiasing
        double support = (bicubic ? 2.0 : 1.0) * filterScale;
        Taps t = new Taps();
        t.ksize = (int) Math.ceil(support) * 2 + 1;
        t.first = new int[outSize];
        t.count = new int[outSize];
        t.weights = new int[outSize * t.ksize];
        double[] w = new double[t.ksize];
        for (int o = 0; o < outSize; o++) {
            double center = (o + 0.5) * scale;
            int lo = Math.max((int) (center - support + 0.5), 0);
            int hi = Math.min((int) (center + support + 0.5), inSize);
            int n = hi - lo;
            double total = 0.0;
            for (int i = 0; i < n; i++) {
                double d = (i + lo - center + 0.5) / filterScale;
                w[i] = bicubic ? cubic(d) : Math.max(0.0, 1.0 - Math.abs(d));
                total += w[i];
            }
            for (int i = 0; i < n; i++) {
                double normalized = total != 0.0 ? w[i] / total : w[i];
                double fixed = normalized * (1 << PRECISION_BITS);
                t.weights[o * t.ksize + i] = (int) (normalized < 0 ? fixed - 0.5 : fixed + 0.5);
            }
            t.first[o] = lo;
            t.count[o] = n;
        }
        return t;
    }

    private static int clip8(int acc) {
        return Math.min(255, Math.max(0, acc >> PRECISION_BITS));  // >> floors, as Pillow
    }

    private static int[] resizeRows(int[] src, int w, int h, int outW, boolean bicubic) {
        Taps t = taps(w, outW, bicubic);
        int[] dst = new int[outW * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < outW; x++) {
                int acc = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < t.count[x]; i++) {
                    acc += src[y * w + t.first[x] + i] * t.weights[x * t.ksize + i];
                }
                dst[y * outW + x] = clip8(acc);
            }
        }
        return dst;
    }

    private static int[] resizeColumns(int[] src, int w, int h, int outH, boolean bicubic) {
        Taps t = taps(h, outH, bicubic);
        int[] dst = new int[w * outH];
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < w; x++) {
                int acc = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < t.count[y]; i++) {
                    acc += src[(t.first[y] + i) * w + x] * t.weights[y * t.ksize + i];
                }
                dst[y * w + x] = clip8(acc);
            }
        }
        return dst;
    }
}
