// Host build of src/mfr/runtime/cuda/warp_normalize.cu's per-pixel arithmetic, for tests without a GPU:
// the loop below does what the kernel's grid does, calling the very same functions.
#include "../../src/mfr/runtime/cuda/warp_normalize.cu"

extern "C" void mfr_warp_normalize_host(const MfrFrame* frame, const float* matrices, int faces, int mirror,
                                        int out_height, int out_width, const int* source, const float* gain,
                                        const float* offset, float* out) {
    const long plane = (long)out_height * out_width;
    for (int n = 0; n < faces * (mirror ? 2 : 1); ++n) {
        for (int y = 0; y < out_height; ++y) {
            for (int x = 0; x < out_width; ++x) {
                float px[3];
                mfr_item_pixel(*frame, matrices, faces, n, x, y, out_width, px);
                for (int c = 0; c < 3; ++c) {
                    out[n * 3 * plane + c * plane + (long)y * out_width + x] =
                        mfr_normalize(px, source, gain, offset, c);
                }
            }
        }
    }
}
