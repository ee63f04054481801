// Fused face preprocessing, one launch for a batch of faces in one frame:
// affine warp (bilinear, constant black border) -> colour order -> normalisation -> NCHW float32/float16,
// written straight into the engine's input binding.
//
// The arithmetic reproduces OpenCV's warpAffine(INTER_LINEAR, BORDER_CONSTANT) on uint8 images as the
// OpenCV of the CPU path implements it (checked against 5.0.0: float32 source coordinates with fused
// multiply-add, interpolation with fused multiply-add, rounding half to even), followed by mfr.runtime.preprocess.normalize
// (x * gain + offset, two float32 roundings). The CPU path is the reference: tests compile this file's
// per-pixel function for the host too and compare it with OpenCV bit for bit.
//
// Compiled at first use by NVRTC (mfr.runtime.cuda_kernels); the same source builds on the host with a
// C++ compiler (the #ifndef __CUDACC__ block below), which is how CI checks the arithmetic without a GPU.

#ifdef __CUDACC__
#define MFR_HD __host__ __device__ __forceinline__
#define MFR_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define MFR_MUL(a, b) __fmul_rn((a), (b))
#define MFR_ADD(a, b) __fadd_rn((a), (b))
#define MFR_RINT(a) rintf(a)
#define MFR_FLOOR(a) floorf(a)
#else
#include <math.h>
#define MFR_HD static inline
#define MFR_FMA(a, b, c) fmaf((a), (b), (c))
#define MFR_MUL(a, b) ((a) * (b))  // the host build uses -ffp-contract=off, so no silent fusing
#define MFR_ADD(a, b) ((a) + (b))
#define MFR_RINT(a) rintf(a)
#define MFR_FLOOR(a) floorf(a)
#endif

// Input formats.
#define MFR_FORMAT_BGR 0  // interleaved uint8, B G R
#define MFR_FORMAT_RGB 1  // interleaved uint8, R G B
#define MFR_FORMAT_NV12 2  // Y plane + interleaved UV plane at half resolution (BT.601, limited range)

struct MfrFrame {
    const unsigned char* data;  // BGR/RGB pixels, or the Y plane for NV12
    const unsigned char* uv;  // NV12 only: the interleaved U,V plane
    int width, height;
    int pitch;  // bytes per row of data
    int uv_pitch;  // bytes per row of uv
    int format;
};

// OpenCV's YUV420sp -> RGB fixed-point conversion (ITU-R BT.601, limited range, 20-bit coefficients).
MFR_HD int mfr_clamp_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

MFR_HD void mfr_nv12_pixel(const MfrFrame& f, int x, int y, float rgb[3]) {
    const int shift = 20, cy = 1220542, cub = 2116026, cug = -409993, cvg = -852492, cvr = 1673527;
    int luma = (int)f.data[y * f.pitch + x] - 16;
    const unsigned char* uv = f.uv + (y >> 1) * f.uv_pitch + (x & ~1);
    int u = (int)uv[0] - 128, v = (int)uv[1] - 128;
    int yy = (luma > 0 ? luma : 0) * cy;
    int half = 1 << (shift - 1);
    rgb[0] = (float)mfr_clamp_u8((yy + half + cvr * v) >> shift);
    rgb[1] = (float)mfr_clamp_u8((yy + half + cvg * v + cug * u) >> shift);
    rgb[2] = (float)mfr_clamp_u8((yy + half + cub * u) >> shift);
}

// One source pixel as (c0, c1, c2) in the frame's own order (B,G,R for BGR and NV12, R,G,B for RGB);
// outside the frame: the constant border, 0.
MFR_HD void mfr_fetch(const MfrFrame& f, int x, int y, float px[3]) {
    if (x < 0 || y < 0 || x >= f.width || y >= f.height) {
        px[0] = px[1] = px[2] = 0.0f;
        return;
    }
    if (f.format == MFR_FORMAT_NV12) {
        float rgb[3];
        mfr_nv12_pixel(f, x, y, rgb);
        px[0] = rgb[2]; px[1] = rgb[1]; px[2] = rgb[0];
        return;
    }
    const unsigned char* p = f.data + y * f.pitch + 3 * x;
    px[0] = (float)p[0]; px[1] = (float)p[1]; px[2] = (float)p[2];
}

// The uint8 value (as float) of output pixel (x, y) of the crop whose crop->frame matrix is m, per
// frame channel; returns 0 when the pixel lies wholly outside the frame.
MFR_HD void mfr_warp_pixel(const MfrFrame& f, const float* m, int x, int y, float out[3]) {
    float row_x = MFR_ADD(MFR_MUL((float)y, m[1]), m[2]);
    float row_y = MFR_ADD(MFR_MUL((float)y, m[4]), m[5]);
    float sx = MFR_FMA(m[0], (float)x, row_x);
    float sy = MFR_FMA(m[3], (float)x, row_y);
    float fx = MFR_FLOOR(sx), fy = MFR_FLOOR(sy);
    int ix = (int)fx, iy = (int)fy;
    if (ix < -1 || iy < -1 || ix >= f.width || iy >= f.height) {
        out[0] = out[1] = out[2] = 0.0f;
        return;
    }
    float ax = sx - fx, ay = sy - fy;
    float p00[3], p01[3], p10[3], p11[3];
    mfr_fetch(f, ix, iy, p00);
    mfr_fetch(f, ix + 1, iy, p01);
    mfr_fetch(f, ix, iy + 1, p10);
    mfr_fetch(f, ix + 1, iy + 1, p11);
    for (int c = 0; c < 3; ++c) {
        float top = MFR_FMA(ax, p01[c] - p00[c], p00[c]);
        float bottom = MFR_FMA(ax, p11[c] - p10[c], p10[c]);
        float v = MFR_RINT(MFR_FMA(ay, bottom - top, top));
        out[c] = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    }
}

// Item n of a batch of `faces` crops followed, with `mirror`, by their mirror images (items faces .. 2 faces - 1):
// the mirror image of a crop samples column out_width - 1 - x of the same face, so item faces + i is crop i
// flipped left to right, exactly (the embedding contract sums a face's embedding and its mirror's).
MFR_HD void mfr_item_pixel(const MfrFrame& f, const float* matrices, int faces, int n, int x, int y, int out_width,
                           float out[3]) {
    int face = n < faces ? n : n - faces;
    int column = n < faces ? x : out_width - 1 - x;
    mfr_warp_pixel(f, matrices + 6 * face, column, y, out);
}

// Normalised value of output channel c: the frame channel source[c], times gain[c], plus offset[c].
MFR_HD float mfr_normalize(const float px[3], const int source[3], const float gain[3], const float offset[3],
                           int c) {
    return MFR_ADD(MFR_MUL(px[source[c]], gain[c]), offset[c]);
}

#ifdef __CUDACC__
struct MfrChannels {
    int source[3];  // output channel c takes frame channel source[c]
    float gain[3];  // scale / std, per output channel
    float offset[3];  // -mean / std, per output channel
};

MFR_HD unsigned short mfr_half_bits(float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// grid: (ceil(W / 16), ceil(H / 16), faces * (1 + mirror)), block: (16, 16). matrices: faces x 6 floats
// (crop -> frame). out: items x 3 x H x W, float32 (half_output 0) or float16 (half_output 1), where items is
// faces, or 2 * faces with mirror (the crops, then their mirror images).
extern "C" __global__ void mfr_warp_normalize(MfrFrame frame, const float* matrices, int faces, int mirror,
                                              int out_height, int out_width, MfrChannels channels, void* out,
                                              int half_output) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int n = blockIdx.z;
    if (x >= out_width || y >= out_height || n >= faces * (mirror ? 2 : 1)) {
        return;
    }
    float px[3];
    mfr_item_pixel(frame, matrices, faces, n, x, y, out_width, px);
    size_t plane = (size_t)out_height * out_width;
    size_t base = (size_t)n * 3 * plane + (size_t)y * out_width + x;
    for (int c = 0; c < 3; ++c) {
        float v = mfr_normalize(px, channels.source, channels.gain, channels.offset, c);
        if (half_output) {
            ((unsigned short*)out)[base + c * plane] = mfr_half_bits(v);
        } else {
            ((float*)out)[base + c * plane] = v;
        }
    }
}
#endif
