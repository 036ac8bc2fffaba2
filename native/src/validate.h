// SPDX-License-Identifier: MIT
// Argument validation and small helpers shared by the C++ and the CUDA library (host code only).
#ifndef LIBDF_VALIDATE_H_
#define LIBDF_VALIDATE_H_

#include <stdint.h>

#include <string>

#include "libdf/crop_math.h"

namespace libdf {

constexpr int32_t kMaxSize = 16384;

// Copies msg into err (truncated, NUL-terminated) and returns code.
int32_t report(char* err, int64_t err_len, int32_t code, const std::string& msg);

// Frame-set shape, output size, scale and every box. Returns an empty string when valid, else the message.
std::string validate_crop_args(int64_t num_frames, int64_t height, int64_t width, const float* boxes,
                               int64_t num_boxes, int32_t size, float scale, bool have_frames, bool have_out);

// NV12 plane layout (pitches, strides, pointers) and the colour options.
std::string validate_nv12_layout(const uint8_t* y, int64_t y_frame_stride, int64_t y_pitch, const uint8_t* uv,
                                 int64_t uv_frame_stride, int64_t uv_pitch, int64_t num_frames, int64_t height,
                                 int64_t width, int32_t matrix, int32_t full_range);

// BT.601/BT.709, limited (Y 16..235, C 16..240) or full range, computed in double and rounded to float once.
YuvCoeffs yuv_coeffs(int32_t matrix, int32_t full_range);

const char* build_info();

}  // namespace libdf

#endif  // LIBDF_VALIDATE_H_
