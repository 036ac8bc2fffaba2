// SPDX-License-Identifier: MIT
#include "validate.h"

#include <math.h>
#include <string.h>

#include <sstream>

#include "libdf/crop.h"

#ifndef LIBDF_VERSION
#define LIBDF_VERSION "unknown"
#endif
#ifndef LIBDF_CUDA_ARCHS
#define LIBDF_CUDA_ARCHS ""
#endif

namespace libdf {

int32_t report(char* err, int64_t err_len, int32_t code, const std::string& msg) {
  if (err != nullptr && err_len > 0) {
    const size_t n = msg.size() < static_cast<size_t>(err_len - 1) ? msg.size() : static_cast<size_t>(err_len - 1);
    memcpy(err, msg.data(), n);
    err[n] = '\0';
  }
  return code;
}

std::string validate_crop_args(int64_t num_frames, int64_t height, int64_t width, const float* boxes,
                               int64_t num_boxes, int32_t size, float scale, bool have_frames, bool have_out) {
  std::ostringstream m;
  if (size < 1 || size > kMaxSize) {
    m << "crop size must be in [1, " << kMaxSize << "], got " << size;
    return m.str();
  }
  if (!isfinite(scale) || !(scale > 0.0f)) {
    m << "scale must be finite and > 0, got " << scale;
    return m.str();
  }
  // 2^24 keeps every pixel coordinate exactly representable in float (the sampling math relies on it).
  if (num_frames < 1 || height < 1 || width < 1 || height > (1 << 24) || width > (1 << 24)) {
    m << "frames must be [F, H, W] with F >= 1 and 1 <= H, W <= 16777216, got [" << num_frames << ", " << height
      << ", " << width << "]";
    return m.str();
  }
  if (num_boxes < 0) {
    m << "number of boxes must be >= 0, got " << num_boxes;
    return m.str();
  }
  if (num_boxes == 0) return std::string();
  if (boxes == nullptr) return "boxes pointer is NULL";
  if (!have_frames) return "frames pointer is NULL";
  if (!have_out) return "output pointer is NULL";
  for (int64_t i = 0; i < num_boxes; ++i) {
    const float* b = boxes + 5 * i;
    bool finite = true;
    for (int k = 0; k < 5; ++k) finite = finite && isfinite(b[k]);
    if (!finite) {
      m << "box " << i << ": values must be finite, got (" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3]
        << ", " << b[4] << ")";
      return m.str();
    }
    if (b[0] != floorf(b[0]) || b[0] < 0.0f || b[0] >= static_cast<float>(num_frames)) {
      m << "box " << i << ": frame index " << b[0] << " is not an integer in [0, " << num_frames << ")";
      return m.str();
    }
    if (!(b[3] > b[1]) || !(b[4] > b[2])) {
      m << "box " << i << ": needs x2 > x1 and y2 > y1 (positive size), got (x1, y1, x2, y2) = (" << b[1] << ", "
        << b[2] << ", " << b[3] << ", " << b[4] << ")";
      return m.str();
    }
    const BoxGeom g = box_geometry(b[1], b[2], b[3], b[4], scale, size);
    if (!isfinite(g.x0) || !isfinite(g.y0) || !isfinite(g.step) || !(g.step > 0.0f)) {
      m << "box " << i << ": expanded crop window is not representable in float32 (box or scale too large or too small)";
      return m.str();
    }
  }
  return std::string();
}

std::string validate_nv12_layout(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch, const uint8_t* uv,
                                 int64_t uv_frame_stride, int64_t uv_pitch, int64_t num_frames, int64_t height,
                                 int64_t width, int32_t matrix, int32_t full_range) {
  std::ostringstream m;
  if (matrix != LIBDF_BT601 && matrix != LIBDF_BT709) {
    m << "matrix must be 0 (BT.601) or 1 (BT.709), got " << matrix;
    return m.str();
  }
  if (full_range != 0 && full_range != 1) {
    m << "full_range must be 0 or 1, got " << full_range;
    return m.str();
  }
  if (num_frames < 1 || height < 1 || width < 1) return std::string();  // reported by validate_crop_args
  if (y == nullptr || uv == nullptr) return "NV12 plane pointer is NULL";
  const int64_t chroma_rows = (height + 1) / 2;
  const int64_t chroma_bytes = 2 * ((width + 1) / 2);
  if (y_pitch < width) {
    m << "y_pitch (" << y_pitch << ") must be >= width (" << width << ")";
    return m.str();
  }
  if (uv_pitch < chroma_bytes) {
    m << "uv_pitch (" << uv_pitch << ") must be >= 2 * ceil(width / 2) (" << chroma_bytes << ")";
    return m.str();
  }
  if (num_frames > 1 && (y_frame_stride < y_pitch * height || uv_frame_stride < uv_pitch * chroma_rows)) {
    m << "frame strides (" << y_frame_stride << ", " << uv_frame_stride << ") smaller than one frame's planes ("
      << y_pitch * height << ", " << uv_pitch * chroma_rows << ")";
    return m.str();
  }
  return std::string();
}

YuvCoeffs yuv_coeffs(int32_t matrix, int32_t full_range) {
  // Kr/Kb of ITU-R BT.601 and BT.709; R' = Y' + 2(1-Kr) Cr, B' = Y' + 2(1-Kb) Cb, G' = (Y' - Kr R' - Kb B') / Kg.
  const double kr = matrix == LIBDF_BT709 ? 0.2126 : 0.299;
  const double kb = matrix == LIBDF_BT709 ? 0.0722 : 0.114;
  const double kg = 1.0 - kr - kb;
  const double ys = full_range ? 1.0 : 255.0 / 219.0;
  const double cs = full_range ? 1.0 : 255.0 / 224.0;
  YuvCoeffs k;
  k.yoff = full_range ? 0.0f : 16.0f;
  k.ys = static_cast<float>(ys);
  k.rv = static_cast<float>(cs * (2.0 * (1.0 - kr)));
  k.bu = static_cast<float>(cs * (2.0 * (1.0 - kb)));
  k.gu = static_cast<float>(cs * (2.0 * (1.0 - kb) * kb / kg));
  k.gv = static_cast<float>(cs * (2.0 * (1.0 - kr) * kr / kg));
  return k;
}

const char* build_info() {
  static const std::string info = std::string("libdeepfake_crop ") + LIBDF_VERSION + " abi " +
                                   std::to_string(LIBDF_ABI_VERSION) + "; " +
#if defined(__clang__)
                                   "clang " __clang_version__
#elif defined(__GNUC__)
                                   "gcc " __VERSION__
#else
                                   "unknown compiler"
#endif
                                   + "; cuda: " + (LIBDF_CUDA_ARCHS[0] ? std::string(LIBDF_CUDA_ARCHS) : "no");
  return info.c_str();
}

}  // namespace libdf

extern "C" {
LIBDF_API int32_t libdf_abi_version(void) { return LIBDF_ABI_VERSION; }
LIBDF_API const char* libdf_build_info(void) { return libdf::build_info(); }
}
