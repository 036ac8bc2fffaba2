/* SPDX-License-Identifier: MIT
 * C ABI of the lib-deepfake native face-crop library (loaded from Python with ctypes; no torch headers).
 *
 * Two shared libraries are built from the same math (native/include/libdf/crop_math.h):
 *   libdeepfake_crop.so       the plain C++ implementation (the reference and the fast CPU path), always built;
 *   libdeepfake_crop_cuda.so  the CUDA kernels, built when CMake finds a CUDA compiler (also exports the
 *                             CPU functions and the common ones below).
 *
 * Data layout (all row-major, contiguous unless a pitch/stride says otherwise):
 *   RGB frames  uint8 [F, H, W, 3]
 *   NV12 frames per frame a Y plane of H rows x y_pitch bytes and an interleaved UV plane of ceil(H/2) rows x
 *               uv_pitch bytes (U at even, V at odd bytes); frame f starts at y + f*y_frame_stride and
 *               uv + f*uv_frame_stride. A torch tensor uint8 [F, H*3/2, W] is y_pitch = uv_pitch = W,
 *               y_frame_stride = uv_frame_stride = H*3/2*W, uv = y + H*W. An NVDEC surface is F = 1 with its pitch.
 *   boxes       float32 [M, 5] = (frame_index, x1, y1, x2, y2) in pixels, x2/y2 exclusive edges
 *   out         uint8 [M, S, S, 3] RGB
 *
 * Every function returns LIBDF_OK (0) or an error code and then writes a one-line message into err (when err is
 * not NULL and err_len > 0). Inputs are validated completely before any pixel is read or any kernel launched.
 */
#ifndef LIBDF_CROP_H_
#define LIBDF_CROP_H_

#include <stdint.h>

#if defined(_WIN32)
#define LIBDF_API __declspec(dllexport)
#else
#define LIBDF_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LIBDF_ABI_VERSION 1

enum {
  LIBDF_OK = 0,
  LIBDF_EINVAL = 1,   /* bad argument: message says which */
  LIBDF_ECUDA = 2,    /* CUDA runtime error (no device, driver too old, launch failure) */
  LIBDF_ENOTSUP = 3   /* this library was built without the requested backend */
};

/* YUV matrix of the NV12 entry points. */
enum { LIBDF_BT601 = 0, LIBDF_BT709 = 1 };

LIBDF_API int32_t libdf_abi_version(void);
/* Static string: version, compiler, whether CUDA is compiled in and for which architectures. */
LIBDF_API const char* libdf_build_info(void);

/* ---- CPU (host pointers) ------------------------------------------------------------------------------------ */
/* num_threads <= 0: std::thread::hardware_concurrency(). */
LIBDF_API int32_t libdf_crop_rgb_cpu(const uint8_t* frames, int64_t num_frames, int64_t height, int64_t width,
                                     const float* boxes, int64_t num_boxes, int32_t size, float scale, uint8_t* out,
                                     int32_t num_threads, char* err, int64_t err_len);

LIBDF_API int32_t libdf_crop_nv12_cpu(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch, const uint8_t* uv,
                                      int64_t uv_frame_stride, int64_t uv_pitch, int64_t num_frames, int64_t height,
                                      int64_t width, int32_t matrix, int32_t full_range, const float* boxes,
                                      int64_t num_boxes, int32_t size, float scale, uint8_t* out,
                                      int32_t num_threads, char* err, int64_t err_len);

/* Whole-frame NV12 -> RGB uint8 [F, H, W, 3] with the same per-pixel conversion the crop uses (chroma: nearest,
 * sample (x/2, y/2)). */
LIBDF_API int32_t libdf_nv12_to_rgb_cpu(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch,
                                        const uint8_t* uv, int64_t uv_frame_stride, int64_t uv_pitch,
                                        int64_t num_frames, int64_t height, int64_t width, int32_t matrix,
                                        int32_t full_range, uint8_t* out, char* err, int64_t err_len);

/* ---- CUDA (device pointers, asynchronous on `stream`) ---------------------------------------------------------
 * boxes_host is validated on the host before the launch; boxes_dev must hold the same M*5 floats in device memory
 * (the caller copies them; the kernel re-derives the geometry from them and still clamps every read, so
 * inconsistent device boxes give wrong pixels, never an out-of-bounds access). stream is a cudaStream_t (NULL =
 * legacy default stream); device is the CUDA device index that owns all pointers. Errors from an earlier
 * asynchronous failure on the device may surface here as LIBDF_ECUDA. */
LIBDF_API int32_t libdf_crop_rgb_cuda(int32_t device, void* stream, const uint8_t* frames, int64_t num_frames,
                                      int64_t height, int64_t width, const float* boxes_host,
                                      const float* boxes_dev, int64_t num_boxes, int32_t size, float scale,
                                      uint8_t* out, char* err, int64_t err_len);

LIBDF_API int32_t libdf_crop_nv12_cuda(int32_t device, void* stream, const uint8_t* y, int64_t y_frame_stride,
                                       int64_t y_pitch, const uint8_t* uv, int64_t uv_frame_stride,
                                       int64_t uv_pitch, int64_t num_frames, int64_t height, int64_t width,
                                       int32_t matrix, int32_t full_range, const float* boxes_host,
                                       const float* boxes_dev, int64_t num_boxes, int32_t size, float scale,
                                       uint8_t* out, char* err, int64_t err_len);

/* 0 when `device` can run the kernels (driver new enough, device present, an image for its architecture). */
LIBDF_API int32_t libdf_cuda_probe(int32_t device, char* err, int64_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* LIBDF_CROP_H_ */
