// SPDX-License-Identifier: MIT
// Plain C++ face crop: the reference for the CUDA kernel and the fast CPU path.
//
// Work is split into (box, block of rows) units over std::threads. Each unit precomputes the column taps of its
// box once (S taps), interpolates source rows horizontally (cached), then blends row pairs vertically.
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "libdf/crop.h"
#include "libdf/crop_math.h"
#include "validate.h"

namespace libdf {
namespace {

constexpr int32_t kRowsPerUnit = 16;

// Reads pixel (x, y) of frame f of an RGB [F, H, W, 3] buffer.
struct RgbFetch {
  const uint8_t* frames;
  int64_t height;
  int64_t width;
  inline const uint8_t* row(int64_t f, int64_t y) const { return frames + ((f * height + y) * width) * 3; }
  inline void px(const uint8_t* row, int64_t x, float out[3]) const {
    const uint8_t* p = row + x * 3;
    out[0] = static_cast<float>(p[0]);
    out[1] = static_cast<float>(p[1]);
    out[2] = static_cast<float>(p[2]);
  }
};

// Converts pixel (x, y) of an NV12 frame to RGB uint8 (chroma: nearest sample, (x/2, y/2)), then to float, so
// cropping NV12 equals converting the whole frame with libdf_nv12_to_rgb_cpu and cropping that.
struct Nv12Fetch {
  const uint8_t* y;
  const uint8_t* uv;
  int64_t y_frame_stride, y_pitch, uv_frame_stride, uv_pitch;
  YuvCoeffs k;
  struct Row {
    const uint8_t* yrow;
    const uint8_t* uvrow;
  };
  inline Row row(int64_t f, int64_t yy) const {
    return Row{y + f * y_frame_stride + yy * y_pitch, uv + f * uv_frame_stride + (yy >> 1) * uv_pitch};
  }
  inline void px(const Row& r, int64_t x, float out[3]) const {
    uint8_t rgb[3];
    const uint8_t* c = r.uvrow + (x >> 1) * 2;
    yuv_to_rgb(r.yrow[x], c[0], c[1], k, rgb);
    out[0] = static_cast<float>(rgb[0]);
    out[1] = static_cast<float>(rgb[1]);
    out[2] = static_cast<float>(rgb[2]);
  }
};

// Horizontal pass of one source row: dst[j*3 + c] = p(x0) * wx0 + p(x1) * wx1, the "top"/"bot" terms of blend().
template <typename Fetch, typename RowT>
void hpass(const Fetch& fetch, const RowT& row, const Tap* xtaps, int32_t size, float* dst) {
  for (int32_t j = 0; j < size; ++j) {
    float a[3], b[3];
    fetch.px(row, xtaps[j].i0, a);
    fetch.px(row, xtaps[j].i1, b);
    for (int c = 0; c < 3; ++c) dst[j * 3 + c] = a[c] * xtaps[j].w0 + b[c] * xtaps[j].w1;
  }
}

// Separable form of blend(): top = p00*wx0 + p01*wx1 per source row, then top*wy0 + bot*wy1 - the same float
// operations in the same order, so the result is bit-identical to the per-pixel function (and the kernel). Two
// horizontal rows are cached: when upscaling, consecutive output rows reuse the same source rows.
template <typename Fetch>
void crop_unit(const Fetch& fetch, int64_t height, int64_t width, const float* box, int32_t size, float scale,
               int32_t row_begin, int32_t row_end, std::vector<Tap>& xtaps, std::vector<float>& scratch,
               uint8_t* out_box) {
  const int64_t f = static_cast<int64_t>(box[0]);
  const BoxGeom g = box_geometry(box[1], box[2], box[3], box[4], scale, size);
  xtaps.resize(size);
  for (int32_t j = 0; j < size; ++j) xtaps[j] = axis_tap(sample_coord(g.x0, g.step, j), width);
  const int64_t n = static_cast<int64_t>(size) * 3;
  scratch.resize(2 * n);
  float* buf[2] = {scratch.data(), scratch.data() + n};
  int64_t cached[2] = {-1, -1};
  // Zero-weight taps point at row/col 0: always in bounds, and w * p == 0 exactly.
  auto source_row = [&](int64_t r, int64_t keep) -> const float* {
    for (int k = 0; k < 2; ++k)
      if (cached[k] == r) return buf[k];
    const int victim = cached[0] == keep ? 1 : 0;
    hpass(fetch, fetch.row(f, r), xtaps.data(), size, buf[victim]);
    cached[victim] = r;
    return buf[victim];
  };
  for (int32_t i = row_begin; i < row_end; ++i) {
    const Tap ty = axis_tap(sample_coord(g.y0, g.step, i), height);
    const float* top = source_row(ty.i0, ty.i1);
    const float* bot = source_row(ty.i1, ty.i0);
    uint8_t* o = out_box + static_cast<int64_t>(i) * n;
    const float wy0 = ty.w0, wy1 = ty.w1;
    for (int64_t k = 0; k < n; ++k) o[k] = to_u8(top[k] * wy0 + bot[k] * wy1);
  }
}

template <typename Fetch>
void crop_all(const Fetch& fetch, int64_t height, int64_t width, const float* boxes, int64_t num_boxes,
              int32_t size, float scale, uint8_t* out, int32_t num_threads) {
  const int64_t blocks_per_box = (size + kRowsPerUnit - 1) / kRowsPerUnit;
  const int64_t units = num_boxes * blocks_per_box;
  const int64_t box_bytes = static_cast<int64_t>(size) * size * 3;
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    std::vector<Tap> xtaps;
    std::vector<float> scratch;
    for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1)) {
      const int64_t b = u / blocks_per_box;
      const int32_t r0 = static_cast<int32_t>((u % blocks_per_box) * kRowsPerUnit);
      const int32_t r1 = std::min<int32_t>(size, r0 + kRowsPerUnit);
      crop_unit(fetch, height, width, boxes + 5 * b, size, scale, r0, r1, xtaps, scratch, out + b * box_bytes);
    }
  };
  int64_t threads = num_threads > 0 ? num_threads : static_cast<int64_t>(std::thread::hardware_concurrency());
  // Threads cost ~tens of microseconds to start; not worth it below ~64k output pixels.
  const int64_t work = num_boxes * static_cast<int64_t>(size) * size;
  threads = std::max<int64_t>(1, std::min<int64_t>({threads, units, 1 + work / 65536}));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace
}  // namespace libdf

using namespace libdf;

extern "C" {

LIBDF_API int32_t libdf_crop_rgb_cpu(const uint8_t* frames, int64_t num_frames, int64_t height, int64_t width,
                                     const float* boxes, int64_t num_boxes, int32_t size, float scale, uint8_t* out,
                                     int32_t num_threads, char* err, int64_t err_len) {
  const std::string msg = validate_crop_args(num_frames, height, width, boxes, num_boxes, size, scale,
                                             frames != nullptr, out != nullptr);
  if (!msg.empty()) return report(err, err_len, LIBDF_EINVAL, msg);
  if (num_boxes == 0) return LIBDF_OK;
  try {
    crop_all(RgbFetch{frames, height, width}, height, width, boxes, num_boxes, size, scale, out, num_threads);
  } catch (const std::exception& e) {  // std::thread / std::vector failures must not cross the C boundary
    return report(err, err_len, LIBDF_EINVAL, std::string("CPU crop failed: ") + e.what());
  }
  return LIBDF_OK;
}

LIBDF_API int32_t libdf_crop_nv12_cpu(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch, const uint8_t* uv,
                                      int64_t uv_frame_stride, int64_t uv_pitch, int64_t num_frames, int64_t height,
                                      int64_t width, int32_t matrix, int32_t full_range, const float* boxes,
                                      int64_t num_boxes, int32_t size, float scale, uint8_t* out,
                                      int32_t num_threads, char* err, int64_t err_len) {
  std::string msg = validate_crop_args(num_frames, height, width, boxes, num_boxes, size, scale, y != nullptr,
                                       out != nullptr);
  if (msg.empty()) {
    msg = validate_nv12_layout(y, y_frame_stride, y_pitch, uv, uv_frame_stride, uv_pitch, num_frames, height, width,
                               matrix, full_range);
  }
  if (!msg.empty()) return report(err, err_len, LIBDF_EINVAL, msg);
  if (num_boxes == 0) return LIBDF_OK;
  const Nv12Fetch fetch{y, uv, y_frame_stride, y_pitch, uv_frame_stride, uv_pitch, yuv_coeffs(matrix, full_range)};
  try {
    crop_all(fetch, height, width, boxes, num_boxes, size, scale, out, num_threads);
  } catch (const std::exception& e) {
    return report(err, err_len, LIBDF_EINVAL, std::string("CPU crop failed: ") + e.what());
  }
  return LIBDF_OK;
}

LIBDF_API int32_t libdf_nv12_to_rgb_cpu(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch,
                                        const uint8_t* uv, int64_t uv_frame_stride, int64_t uv_pitch,
                                        int64_t num_frames, int64_t height, int64_t width, int32_t matrix,
                                        int32_t full_range, uint8_t* out, char* err, int64_t err_len) {
  if (num_frames < 1 || height < 1 || width < 1) {
    return report(err, err_len, LIBDF_EINVAL, "NV12 frames must have F, H, W >= 1");
  }
  if (out == nullptr) return report(err, err_len, LIBDF_EINVAL, "output pointer is NULL");
  const std::string msg = validate_nv12_layout(y, y_frame_stride, y_pitch, uv, uv_frame_stride, uv_pitch,
                                               num_frames, height, width, matrix, full_range);
  if (!msg.empty()) return report(err, err_len, LIBDF_EINVAL, msg);
  const YuvCoeffs k = yuv_coeffs(matrix, full_range);
  for (int64_t f = 0; f < num_frames; ++f) {
    for (int64_t r = 0; r < height; ++r) {
      const uint8_t* yr = y + f * y_frame_stride + r * y_pitch;
      const uint8_t* cr = uv + f * uv_frame_stride + (r >> 1) * uv_pitch;
      uint8_t* o = out + ((f * height + r) * width) * 3;
      for (int64_t x = 0; x < width; ++x) yuv_to_rgb(yr[x], cr[(x >> 1) * 2], cr[(x >> 1) * 2 + 1], k, o + x * 3);
    }
  }
  return LIBDF_OK;
}

}  // extern "C"
