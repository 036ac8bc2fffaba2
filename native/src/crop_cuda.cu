// SPDX-License-Identifier: MIT
// Fused face crop + bilinear resize on the GPU: one launch for all boxes, one thread per output pixel, reading only
// the (at most) 4 source pixels each output pixel needs. The math is libdf/crop_math.h, shared with the C++
// reference; built with --fmad=false so both round identically (see the header).
#include <cuda_runtime.h>

#include <string>

#include "libdf/crop.h"
#include "libdf/crop_math.h"
#include "validate.h"

namespace libdf {
namespace {

constexpr int kBlockX = 32;
constexpr int kBlockY = 8;
constexpr unsigned kMaxGridZ = 65535;  // boxes beyond this are handled by a grid-stride loop

template <typename Src>
__global__ void crop_kernel(Src src, int64_t num_frames, int64_t height, int64_t width,
                            const float* __restrict__ boxes, int64_t num_boxes, int32_t size, float scale,
                            uint8_t* __restrict__ out) {
  const int32_t j = blockIdx.x * blockDim.x + threadIdx.x;
  const int32_t i = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= size || j >= size) return;
  for (int64_t b = blockIdx.z; b < num_boxes; b += gridDim.z) {
    crop_pixel(src, num_frames, height, width, boxes + 5 * b, size, scale, i, j, out + ((b * size + i) * size + j) * 3);
  }
}

int32_t cuda_fail(char* err, int64_t err_len, const char* what, cudaError_t e) {
  return report(err, err_len, LIBDF_ECUDA,
                std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

template <typename Src>
int32_t launch(int32_t device, void* stream, const Src& src, int64_t num_frames, int64_t height, int64_t width,
               const float* boxes_dev, int64_t num_boxes, int32_t size, float scale, uint8_t* out, char* err,
               int64_t err_len) {
  if (boxes_dev == nullptr) return report(err, err_len, LIBDF_EINVAL, "boxes_dev pointer is NULL");
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) return cuda_fail(err, err_len, "cudaSetDevice", e);
  const dim3 block(kBlockX, kBlockY, 1);
  const dim3 grid((size + kBlockX - 1) / kBlockX, (size + kBlockY - 1) / kBlockY,
                  static_cast<unsigned>(num_boxes < kMaxGridZ ? num_boxes : kMaxGridZ));
  crop_kernel<Src><<<grid, block, 0, static_cast<cudaStream_t>(stream)>>>(src, num_frames, height, width, boxes_dev,
                                                                           num_boxes, size, scale, out);
  e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(err, err_len, "crop kernel launch", e);
  return LIBDF_OK;
}

}  // namespace
}  // namespace libdf

using namespace libdf;

extern "C" {

LIBDF_API int32_t libdf_crop_rgb_cuda(int32_t device, void* stream, const uint8_t* frames, int64_t num_frames,
                                      int64_t height, int64_t width, const float* boxes_host,
                                      const float* boxes_dev, int64_t num_boxes, int32_t size, float scale,
                                      uint8_t* out, char* err, int64_t err_len) {
  const std::string msg = validate_crop_args(num_frames, height, width, boxes_host, num_boxes, size, scale,
                                             frames != nullptr, out != nullptr);
  if (!msg.empty()) return report(err, err_len, LIBDF_EINVAL, msg);
  if (num_boxes == 0) return LIBDF_OK;
  return launch(device, stream, RgbSource{frames, height, width}, num_frames, height, width, boxes_dev, num_boxes, size,
                scale, out, err, err_len);
}

LIBDF_API int32_t libdf_crop_nv12_cuda(int32_t device, void* stream, const uint8_t* y, int64_t y_frame_stride,
                                       int64_t y_pitch, const uint8_t* uv, int64_t uv_frame_stride,
                                       int64_t uv_pitch, int64_t num_frames, int64_t height, int64_t width,
                                       int32_t matrix, int32_t full_range, const float* boxes_host,
                                       const float* boxes_dev, int64_t num_boxes, int32_t size, float scale,
                                       uint8_t* out, char* err, int64_t err_len) {
  std::string msg = validate_crop_args(num_frames, height, width, boxes_host, num_boxes, size, scale, y != nullptr,
                                       out != nullptr);
  if (msg.empty()) {
    msg = validate_nv12_layout(y, y_frame_stride, y_pitch, uv, uv_frame_stride, uv_pitch, num_frames, height, width,
                               matrix, full_range);
  }
  if (!msg.empty()) return report(err, err_len, LIBDF_EINVAL, msg);
  if (num_boxes == 0) return LIBDF_OK;
  const Nv12Source src{y, uv, y_frame_stride, y_pitch, uv_frame_stride, uv_pitch, yuv_coeffs(matrix, full_range)};
  return launch(device, stream, src, num_frames, height, width, boxes_dev, num_boxes, size, scale, out, err,
                err_len);
}

LIBDF_API int32_t libdf_cuda_probe(int32_t device, char* err, int64_t err_len) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return cuda_fail(err, err_len, "cudaGetDeviceCount", e);
  if (device < 0 || device >= count) {
    return report(err, err_len, LIBDF_ECUDA,
                  "CUDA device " + std::to_string(device) + " not present (" + std::to_string(count) + " devices)");
  }
  e = cudaSetDevice(device);
  if (e != cudaSuccess) return cuda_fail(err, err_len, "cudaSetDevice", e);
  // Checks that the fatbinary holds an image this GPU can run (SASS for its arch or PTX the driver can JIT).
  cudaFuncAttributes attr;
  e = cudaFuncGetAttributes(&attr, crop_kernel<RgbSource>);
  if (e != cudaSuccess) return cuda_fail(err, err_len, "no kernel image for this GPU", e);
  return LIBDF_OK;
}

}  // extern "C"
