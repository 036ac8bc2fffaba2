// SPDX-License-Identifier: MIT
// Per-pixel face-crop sampling math, shared verbatim by the C++ reference (host) and the CUDA kernel (device).
//
// The geometry is the contract of docs/ARCHITECTURE.md "Crop geometry" and of lib_deepfake/faces/crop.py:
//   cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, side = max(x2 - x1, y2 - y1) * scale
//   sx = (cx - side/2) + (j + 0.5) * side / S - 0.5       (pixel centres, align_corners=False)
//   bilinear over floor(sx), floor(sx)+1 with weights 1-fx, fx; neighbours outside the frame contribute 0
//   out = clamp(floor(v + 0.5), 0, 255)
//
// Every operation is written out in the exact order the torch path uses, in float32, one rounding per
// operation. Build both sides without FMA contraction (-ffp-contract=off, nvcc --fmad=false): then the host
// reference, the CUDA kernel and the torch path produce the same bits, not just values within one grey level.
#ifndef LIBDF_CROP_MATH_H_
#define LIBDF_CROP_MATH_H_

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define LIBDF_HD __host__ __device__ __forceinline__
#else
#define LIBDF_HD inline
#endif

namespace libdf {

// The crop window of one box: top-left corner (x0, y0) in continuous pixel coordinates and the source distance
// between two output samples (side / S).
struct BoxGeom {
  float x0;
  float y0;
  float step;
};

LIBDF_HD BoxGeom box_geometry(float x1, float y1, float x2, float y2, float scale, int32_t size) {
  const float cx = (x1 + x2) * 0.5f;
  const float cy = (y1 + y2) * 0.5f;
  const float w = x2 - x1;
  const float h = y2 - y1;
  const float side = (w >= h ? w : h) * scale;
  const float half = side * 0.5f;
  BoxGeom g;
  g.x0 = cx - half;
  g.y0 = cy - half;
  g.step = side / static_cast<float>(size);
  return g;
}

// Source coordinate of output sample k along one axis (pixel-centre convention).
LIBDF_HD float sample_coord(float origin, float step, int32_t k) {
  return (origin + (static_cast<float>(k) + 0.5f) * step) - 0.5f;
}

// The two bilinear taps along one axis. A tap outside [0, n-1] gets weight 0 and index 0, so callers may read it
// unconditionally (always in bounds) or skip it; both give the same sum because w * p == 0 exactly.
struct Tap {
  int64_t i0;
  int64_t i1;
  float w0;
  float w1;
};

LIBDF_HD Tap axis_tap(float s, int64_t n) {
  const float fl = floorf(s);
  const float f = s - fl;
  // Comparisons written so that NaN/inf coordinates (impossible after validation, but the kernel must never read
  // out of bounds whatever it is given) fall on the "outside" side, and before any float -> int conversion.
  const bool v0 = fl >= 0.0f && fl <= static_cast<float>(n - 1);
  const bool v1 = fl >= -1.0f && fl <= static_cast<float>(n - 2);
  Tap t;
  t.i0 = v0 ? static_cast<int64_t>(fl) : 0;
  t.i1 = v1 ? static_cast<int64_t>(fl) + 1 : 0;
  t.w0 = v0 ? 1.0f - f : 0.0f;
  t.w1 = v1 ? f : 0.0f;
  return t;
}

LIBDF_HD float blend(float p00, float p01, float p10, float p11, float wx0, float wx1, float wy0, float wy1) {
  const float top = p00 * wx0 + p01 * wx1;
  const float bot = p10 * wx0 + p11 * wx1;
  return top * wy0 + bot * wy1;
}

// floor(v + 0.5) clamped to [0, 255]; NaN maps to 0. No floorf: on x86-64 without SSE4.1 it is a libm call in the
// innermost loop.
LIBDF_HD uint8_t to_u8(float v) {
  float r = v + 0.5f;
  r = r > 0.0f ? r : 0.0f;  // also NaN -> 0
  r = r < 255.0f ? r : 255.0f;
  return static_cast<uint8_t>(static_cast<int32_t>(r));  // r >= 0: truncation == floor; branch-free, vectorizes
}

// YUV -> RGB coefficients (computed on the host in double, then rounded to float once; see yuv_coeffs in
// validate.cpp). R = yv + rv*v, G = (yv - gu*u) - gv*v, B = yv + bu*u with yv = (Y - yoff) * ys, u = U - 128,
// v = V - 128.
struct YuvCoeffs {
  float yoff;
  float ys;
  float rv;
  float gu;
  float gv;
  float bu;
};

LIBDF_HD void yuv_to_rgb(uint8_t Y, uint8_t U, uint8_t V, const YuvCoeffs& k, uint8_t rgb[3]) {
  const float yv = (static_cast<float>(Y) - k.yoff) * k.ys;
  const float u = static_cast<float>(U) - 128.0f;
  const float v = static_cast<float>(V) - 128.0f;
  rgb[0] = to_u8(yv + k.rv * v);
  rgb[1] = to_u8((yv - k.gu * u) - k.gv * v);
  rgb[2] = to_u8(yv + k.bu * u);
}

// Read-only load: through the read-only data cache on the device, a plain load on the host.
LIBDF_HD uint8_t load_u8(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

// Pixel sources of the per-pixel path below: px(f, y, x, rgb) writes pixel (x, y) of frame f as float RGB.
struct RgbSource {
  const uint8_t* frames;  // uint8 [F, H, W, 3]
  int64_t height;
  int64_t width;
  LIBDF_HD void px(int64_t f, int64_t y, int64_t x, float out[3]) const {
    const uint8_t* p = frames + (((f * height + y) * width) + x) * 3;
    out[0] = static_cast<float>(load_u8(p));
    out[1] = static_cast<float>(load_u8(p + 1));
    out[2] = static_cast<float>(load_u8(p + 2));
  }
};

// NV12: Y plane + interleaved UV plane; chroma by nearest sample (x/2, y/2); converted to uint8 RGB before the
// interpolation, so an NV12 crop equals the crop of the converted frame.
struct Nv12Source {
  const uint8_t* y;
  const uint8_t* uv;
  int64_t y_frame_stride, y_pitch, uv_frame_stride, uv_pitch;
  YuvCoeffs k;
  LIBDF_HD void px(int64_t f, int64_t yy, int64_t x, float out[3]) const {
    const uint8_t* c = uv + f * uv_frame_stride + (yy >> 1) * uv_pitch + (x >> 1) * 2;
    uint8_t rgb[3];
    yuv_to_rgb(load_u8(y + f * y_frame_stride + yy * y_pitch + x), load_u8(c), load_u8(c + 1), k, rgb);
    out[0] = static_cast<float>(rgb[0]);
    out[1] = static_cast<float>(rgb[1]);
    out[2] = static_cast<float>(rgb[2]);
  }
};

// One output pixel (row i, col j) of box b: the body of the CUDA kernel (one thread each). The C++ library has its
// own table-driven loop (the reference); ctest runs this function on the host against it, so the kernel's indexing
// is checked - under AddressSanitizer too - on machines without a GPU.
template <typename Src>
LIBDF_HD void crop_pixel(const Src& src, int64_t num_frames, int64_t height, int64_t width, const float* box,
                         int32_t size, float scale, int32_t i, int32_t j, uint8_t* o) {
  const float fi = box[0];
  // Validated on the host; re-checked so that device boxes differing from the host copy cannot index outside the
  // frame batch.
  if (!(fi >= 0.0f && fi < static_cast<float>(num_frames))) {
    o[0] = o[1] = o[2] = 0;
    return;
  }
  const int64_t f = static_cast<int64_t>(fi);
  const BoxGeom g = box_geometry(box[1], box[2], box[3], box[4], scale, size);
  const Tap tx = axis_tap(sample_coord(g.x0, g.step, j), width);
  const Tap ty = axis_tap(sample_coord(g.y0, g.step, i), height);
  float p00[3] = {0.f, 0.f, 0.f}, p01[3] = {0.f, 0.f, 0.f}, p10[3] = {0.f, 0.f, 0.f}, p11[3] = {0.f, 0.f, 0.f};
  // Loads with weight 0 (outside the frame) are skipped: less traffic at borders, the same sum as the reference.
  if (ty.w0 != 0.0f) {
    if (tx.w0 != 0.0f) src.px(f, ty.i0, tx.i0, p00);
    if (tx.w1 != 0.0f) src.px(f, ty.i0, tx.i1, p01);
  }
  if (ty.w1 != 0.0f) {
    if (tx.w0 != 0.0f) src.px(f, ty.i1, tx.i0, p10);
    if (tx.w1 != 0.0f) src.px(f, ty.i1, tx.i1, p11);
  }
  for (int c = 0; c < 3; ++c) o[c] = to_u8(blend(p00[c], p01[c], p10[c], p11[c], tx.w0, tx.w1, ty.w0, ty.w1));
}

}  // namespace libdf

#endif  // LIBDF_CROP_MATH_H_
