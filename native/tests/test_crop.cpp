// SPDX-License-Identifier: MIT
// ctest suite of the C++ reference: `libdf_test_crop <case>` runs one case (see CMakeLists.txt for the list).
// The expected values come from an independent double-precision implementation of the contract in
// docs/ARCHITECTURE.md ("Crop geometry"), written here without the shared header's helpers.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <array>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "libdf/crop.h"
#include "libdf/crop_math.h"
#include "validate.h"

namespace {

int g_failures = 0;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                          \
    }                                                                        \
  } while (0)

#define CHECK_MSG(cond, ...)                                   \
  do {                                                         \
    if (!(cond)) {                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                            \
      fprintf(stderr, "\n");                                   \
      ++g_failures;                                            \
    }                                                          \
  } while (0)

using Bytes = std::vector<uint8_t>;

struct Frames {
  int64_t f, h, w;
  Bytes data;  // exact size, so AddressSanitizer catches any read past the end
};

Frames random_frames(int64_t f, int64_t h, int64_t w, uint32_t seed) {
  std::mt19937 rng(seed);
  Frames fr{f, h, w, Bytes(static_cast<size_t>(f * h * w * 3))};
  for (auto& v : fr.data) v = static_cast<uint8_t>(rng() & 0xff);
  return fr;
}

// The contract in double precision.
Bytes reference_crop(const Frames& fr, const std::vector<float>& boxes, int s, double scale) {
  const size_t m = boxes.size() / 5;
  Bytes out(m * s * s * 3);
  for (size_t b = 0; b < m; ++b) {
    const double fi = boxes[5 * b], x1 = boxes[5 * b + 1], y1 = boxes[5 * b + 2], x2 = boxes[5 * b + 3],
                 y2 = boxes[5 * b + 4];
    const double cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
    const double side = std::max(x2 - x1, y2 - y1) * scale;
    auto pix = [&](int64_t y, int64_t x, int c) -> double {
      if (x < 0 || y < 0 || x >= fr.w || y >= fr.h) return 0.0;
      return fr.data[((static_cast<int64_t>(fi) * fr.h + y) * fr.w + x) * 3 + c];
    };
    for (int i = 0; i < s; ++i) {
      const double sy = cy - side / 2 + (i + 0.5) * side / s - 0.5;
      const double y0 = floor(sy), fy = sy - y0;
      for (int j = 0; j < s; ++j) {
        const double sx = cx - side / 2 + (j + 0.5) * side / s - 0.5;
        const double x0 = floor(sx), fx = sx - x0;
        for (int c = 0; c < 3; ++c) {
          const int64_t xi = static_cast<int64_t>(x0), yi = static_cast<int64_t>(y0);
          const double v = (1 - fy) * ((1 - fx) * pix(yi, xi, c) + fx * pix(yi, xi + 1, c)) +
                           fy * ((1 - fx) * pix(yi + 1, xi, c) + fx * pix(yi + 1, xi + 1, c));
          out[((b * s + i) * s + j) * 3 + c] = static_cast<uint8_t>(std::min(255.0, std::max(0.0, floor(v + 0.5))));
        }
      }
    }
  }
  return out;
}

Bytes run_crop(const Frames& fr, const std::vector<float>& boxes, int s, float scale, int threads = 1) {
  Bytes out(boxes.size() / 5 * s * s * 3, 0xAB);
  char err[256] = {0};
  const int rc = libdf_crop_rgb_cpu(fr.data.data(), fr.f, fr.h, fr.w, boxes.data(),
                                    static_cast<int64_t>(boxes.size() / 5), s, scale, out.data(), threads, err,
                                    sizeof err);
  CHECK_MSG(rc == LIBDF_OK, "rc=%d err=%s", rc, err);
  return out;
}

// Largest absolute difference and number of differing bytes.
std::pair<int, size_t> compare(const Bytes& a, const Bytes& b) {
  int mx = 0;
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int d = abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
    mx = std::max(mx, d);
    n += d != 0;
  }
  return {mx, n};
}

void expect_close_to_reference(const Frames& fr, const std::vector<float>& boxes, int s, float scale,
                               const char* what) {
  const Bytes got = run_crop(fr, boxes, s, scale);
  const Bytes want = reference_crop(fr, boxes, s, scale);
  CHECK(got.size() == want.size());
  const auto [mx, n] = compare(got, want);
  CHECK_MSG(mx <= 1, "%s: max diff %d vs the double-precision formula", what, mx);
  printf("%s: %zu bytes, max diff %d, %zu differ by 1\n", what, got.size(), mx, n);
}

void test_identity() {
  // Box = whole frame, scale 1, S = W = H: sample (i, j) lands exactly on pixel (i, j).
  for (int s : {1, 2, 37, 64}) {
    const Frames fr = random_frames(2, s, s, 1 + s);
    const std::vector<float> boxes = {1, 0, 0, static_cast<float>(s), static_cast<float>(s)};
    const Bytes got = run_crop(fr, boxes, s, 1.0f);
    CHECK_MSG(memcmp(got.data(), fr.data.data() + s * s * 3, got.size()) == 0, "identity crop differs, S=%d", s);
  }
}

void test_downscale() {
  const Frames fr = random_frames(1, 120, 160, 2);
  expect_close_to_reference(fr, {0, 20, 10, 120, 110}, 37, 1.0f, "downscale 100->37");
  expect_close_to_reference(fr, {0, 30.5f, 20.25f, 90.75f, 100.1f}, 32, 1.3f, "downscale fractional box");
  // A constant image stays constant through any resize.
  Frames flat{1, 50, 60, Bytes(50 * 60 * 3, 200)};
  const Bytes got = run_crop(flat, {0, 5, 5, 45, 45}, 9, 1.0f);
  CHECK(compare(got, Bytes(got.size(), 200)).first == 0);
}

void test_upscale() {
  const Frames fr = random_frames(1, 40, 30, 3);
  expect_close_to_reference(fr, {0, 10, 10, 20, 20}, 64, 1.0f, "upscale 10->64");
  expect_close_to_reference(fr, {0, 3.3f, 7.7f, 11.1f, 12.2f}, 224, 1.3f, "upscale 8->224, scale 1.3");
  // A horizontal ramp 0, 10, 20, ... sampled at half-pixel steps interpolates linearly.
  Frames ramp{1, 4, 8, Bytes(4 * 8 * 3)};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x)
      for (int c = 0; c < 3; ++c) ramp.data[(y * 8 + x) * 3 + c] = static_cast<uint8_t>(10 * x);
  // Window [2, 6) at S = 8: samples at x = 2 + (j + 0.5)/2 - 0.5 = 1.75, 2.25, ... -> 17.5 -> 18, 22.5 -> 23, ...
  const Bytes got = run_crop(ramp, {0, 2, 0, 6, 4}, 8, 1.0f);
  const int want[8] = {18, 23, 28, 33, 38, 43, 48, 53};
  for (int j = 0; j < 8; ++j) CHECK_MSG(got[(3 * 8 + j) * 3] == want[j], "ramp j=%d got %d want %d", j, got[(3 * 8 + j) * 3], want[j]);
}

void test_partly_outside() {
  const Frames fr = random_frames(1, 48, 64, 4);
  expect_close_to_reference(fr, {0, -20, -10, 30, 40}, 50, 1.0f, "partly outside top-left");
  expect_close_to_reference(fr, {0, 40, 30, 90, 70}, 33, 1.3f, "partly outside bottom-right");
  expect_close_to_reference(fr, {0, -100, -100, 200, 200}, 64, 1.0f, "frame inside a larger window");
  // Left half of the window is outside: those output pixels are black.
  const Bytes got = run_crop(fr, {0, -32, 0, 32, 64}, 16, 1.0f);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 7; ++j)
      for (int c = 0; c < 3; ++c) CHECK(got[((i * 16) + j) * 3 + c] == 0);
}

void test_fully_outside() {
  const Frames fr = random_frames(1, 20, 30, 5);
  for (const auto& box : std::vector<std::vector<float>>{{0, 100, 100, 150, 150},
                                                         {0, -50, -50, -10, -10},
                                                         {0, -1e7f, 5, -1e7f + 10, 15},
                                                         {0, 3e7f, 3e7f, 3.1e7f, 3.1e7f}}) {
    const Bytes got = run_crop(fr, box, 12, 1.3f);
    CHECK_MSG(compare(got, Bytes(got.size(), 0)).first == 0, "box at x1=%g not black", box[1]);
  }
}

void test_tiny_and_odd_frames() {
  const Frames one = random_frames(1, 1, 1, 6);
  expect_close_to_reference(one, {0, 0, 0, 1, 1}, 1, 1.0f, "1x1 frame, S=1");
  expect_close_to_reference(one, {0, 0, 0, 1, 1}, 5, 1.0f, "1x1 frame, S=5");
  expect_close_to_reference(one, {0, -2, -2, 3, 3}, 7, 1.3f, "1x1 frame, large window");
  const Bytes id = run_crop(one, {0, 0, 0, 1, 1}, 1, 1.0f);
  CHECK(memcmp(id.data(), one.data.data(), 3) == 0);
  const Frames odd = random_frames(3, 7, 5, 7);
  expect_close_to_reference(odd, {2, 0.5f, 1.5f, 4.5f, 6.5f}, 9, 1.3f, "7x5 frame");
  expect_close_to_reference(odd, {1, 1, 1, 2, 2}, 3, 1.0f, "7x5 frame, 1-pixel box");
  const Frames col = random_frames(1, 9, 1, 8);
  expect_close_to_reference(col, {0, 0, 0, 1, 9}, 11, 1.0f, "9x1 column");
}

void test_threads_agree() {
  const Frames fr = random_frames(3, 90, 120, 9);
  std::vector<float> boxes;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-20.f, 130.f);
  for (int b = 0; b < 23; ++b) {
    const float x = u(rng), y = u(rng);
    boxes.insert(boxes.end(), {static_cast<float>(b % 3), x, y, x + 5 + (b * 7) % 60, y + 3 + (b * 5) % 50});
  }
  const Bytes one = run_crop(fr, boxes, 48, 1.3f, 1);
  for (int t : {2, 3, 8, 0}) CHECK_MSG(one == run_crop(fr, boxes, 48, 1.3f, t), "threads=%d differs", t);
}

void test_many_random_boxes() {
  const Frames fr = random_frames(4, 72, 96, 10);
  std::vector<float> boxes;
  std::mt19937 rng(10);
  std::uniform_real_distribution<float> pos(-30.f, 110.f), len(0.5f, 80.f);
  for (int b = 0; b < 40; ++b) {
    const float x = pos(rng), y = pos(rng);
    boxes.insert(boxes.end(), {static_cast<float>(b % 4), x, y, x + len(rng), y + len(rng)});
  }
  expect_close_to_reference(fr, boxes, 29, 1.3f, "40 random boxes");
}

// Independent double formula: ITU-R BT.601 / BT.709 from Kr, Kb; limited range Y 16..235, C 16..240.
void rgb_double(int Y, int U, int V, int matrix, bool full, double rgb[3]) {
  const double kr = matrix == LIBDF_BT709 ? 0.2126 : 0.299, kb = matrix == LIBDF_BT709 ? 0.0722 : 0.114;
  const double kg = 1 - kr - kb;
  const double yn = full ? Y / 255.0 : (Y - 16) / 219.0;
  const double pb = full ? (U - 128) / 255.0 : (U - 128) / 224.0;
  const double pr = full ? (V - 128) / 255.0 : (V - 128) / 224.0;
  const double r = yn + 2 * (1 - kr) * pr;
  const double b = yn + 2 * (1 - kb) * pb;
  const double g = (yn - kr * r - kb * b) / kg;
  rgb[0] = 255 * r;
  rgb[1] = 255 * g;
  rgb[2] = 255 * b;
}

void test_nv12_matrix_vs_double() {
  // All 2^24 (Y, U, V) triples (every 5th of U and V under the sanitizer build, which is ~20x slower).
  const int stride = getenv("LIBDF_TEST_QUICK") ? 5 : 1;
  for (int matrix : {LIBDF_BT601, LIBDF_BT709}) {
    for (int full : {0, 1}) {
      // One 256-wide, 2-row NV12 frame per (U, V): Y = x, chroma constant.
      Bytes y(256 * 2), uv(256), rgb(256 * 2 * 3);
      for (int x = 0; x < 256; ++x) y[x] = y[256 + x] = static_cast<uint8_t>(x);
      int mx = 0;
      size_t off = 0, total = 0;
      for (int U = 0; U < 256; U += stride) {
        for (int V = 0; V < 256; V += stride) {
          for (int x = 0; x < 128; ++x) {
            uv[2 * x] = static_cast<uint8_t>(U);
            uv[2 * x + 1] = static_cast<uint8_t>(V);
          }
          char err[256];
          const int rc = libdf_nv12_to_rgb_cpu(y.data(), 0, 256, uv.data(), 0, 256, 1, 2, 256, matrix, full,
                                               rgb.data(), err, sizeof err);
          CHECK_MSG(rc == LIBDF_OK, "%s", err);
          for (int Y = 0; Y < 256; ++Y) {
            double want[3];
            rgb_double(Y, U, V, matrix, full, want);
            for (int c = 0; c < 3; ++c) {
              const int w = static_cast<int>(std::min(255.0, std::max(0.0, floor(want[c] + 0.5))));
              const int d = abs(w - rgb[(256 + Y) * 3 + c]);  // row 1 uses chroma row 0 too
              mx = std::max(mx, d);
              off += d != 0;
              ++total;
            }
          }
        }
      }
      printf("nv12 matrix=%s full_range=%d: %zu values, max diff %d, %zu (%.4f%%) differ from the double formula\n",
             matrix == LIBDF_BT709 ? "BT.709" : "BT.601", full, total, mx, off, 100.0 * off / total);
      CHECK(mx <= 1);
      CHECK(off * 1000 < total);  // rounding-boundary cases only
    }
  }
  // Spot values (BT.601 limited): black, white, mid grey.
  Bytes y = {16, 235, 126, 126}, uv = {128, 128, 128, 128}, rgb(12);
  char err[256];
  CHECK(libdf_nv12_to_rgb_cpu(y.data(), 0, 4, uv.data(), 0, 4, 1, 1, 4, LIBDF_BT601, 0, rgb.data(), err, 256) == 0);
  CHECK(rgb[0] == 0 && rgb[1] == 0 && rgb[2] == 0);
  CHECK(rgb[3] == 255 && rgb[4] == 255 && rgb[5] == 255);
  CHECK(rgb[6] == 128 && rgb[7] == 128 && rgb[8] == 128);
}

void test_nv12_crop_equals_rgb_crop() {
  // Pitched planes in separate buffers (as NVDEC maps them), odd sizes, 2 frames.
  const int64_t F = 2, H = 27, W = 33, yp = 40, uvp = 36, ch = (H + 1) / 2;
  const int64_t yfs = yp * H + 16, uvfs = uvp * ch + 8;
  std::mt19937 rng(11);
  Bytes y(static_cast<size_t>(yfs * (F - 1) + yp * H)), uv(static_cast<size_t>(uvfs * (F - 1) + uvp * ch));
  for (auto& v : y) v = static_cast<uint8_t>(rng());
  for (auto& v : uv) v = static_cast<uint8_t>(rng());
  std::vector<float> boxes = {0, 3, 4, 20, 19, 1, -5, -5, 12, 40, 1, 20.5f, 10.25f, 40, 30, 0, 0, 0, 33, 27};
  const int64_t m = static_cast<int64_t>(boxes.size() / 5);
  for (int matrix : {LIBDF_BT601, LIBDF_BT709}) {
    for (int full : {0, 1}) {
      Frames rgb{F, H, W, Bytes(static_cast<size_t>(F * H * W * 3))};
      char err[256] = {0};
      CHECK_MSG(libdf_nv12_to_rgb_cpu(y.data(), yfs, yp, uv.data(), uvfs, uvp, F, H, W, matrix, full,
                                      rgb.data.data(), err, sizeof err) == 0, "%s", err);
      Bytes got(static_cast<size_t>(m * 24 * 24 * 3));
      const int rc = libdf_crop_nv12_cpu(y.data(), yfs, yp, uv.data(), uvfs, uvp, F, H, W, matrix, full,
                                         boxes.data(), m, 24, 1.3f, got.data(), 2, err, sizeof err);
      CHECK_MSG(rc == 0, "%s", err);
      CHECK_MSG(got == run_crop(rgb, boxes, 24, 1.3f), "NV12 crop != crop of converted RGB (matrix %d full %d)",
                matrix, full);
    }
  }
}

void expect_rejected(const std::vector<float>& boxes, int s, float scale, const char* needle, int64_t frames = 2) {
  const Frames fr = random_frames(2, 10, 10, 12);
  const int64_t m = static_cast<int64_t>(boxes.size() / 5);
  Bytes out(static_cast<size_t>(std::max<int64_t>(1, m * std::max(s, 1) * std::max(s, 1) * 3)), 0x5A);
  char err[256] = {0};
  const int rc = libdf_crop_rgb_cpu(fr.data.data(), frames, 10, 10, boxes.data(), m, s, scale, out.data(), 1, err,
                                    sizeof err);
  CHECK_MSG(rc == LIBDF_EINVAL, "expected EINVAL for '%s', got %d", needle, rc);
  CHECK_MSG(strstr(err, needle) != nullptr, "message '%s' lacks '%s'", err, needle);
  CHECK_MSG(compare(out, Bytes(out.size(), 0x5A)).first == 0, "output written despite the error ('%s')", needle);
  printf("rejected: %s\n", err);
}

void test_bad_input() {
  const float nan = NAN, inf = INFINITY;
  expect_rejected({0, nan, 0, 5, 5}, 8, 1.3f, "finite");
  expect_rejected({0, 0, 0, inf, 5}, 8, 1.3f, "finite");
  expect_rejected({0, 5, 0, 5, 5}, 8, 1.3f, "x2 > x1");     // zero width
  expect_rejected({0, 0, 5, 5, 2}, 8, 1.3f, "x2 > x1");     // negative height
  expect_rejected({2, 0, 0, 5, 5}, 8, 1.3f, "frame index");  // F = 2
  expect_rejected({-1, 0, 0, 5, 5}, 8, 1.3f, "frame index");
  expect_rejected({0.5f, 0, 0, 5, 5}, 8, 1.3f, "frame index");
  expect_rejected({0, 0, 0, 5, 5, 1, 0, 0, 5, nan}, 8, 1.3f, "box 1");
  expect_rejected({0, 0, 0, 5, 5}, 0, 1.3f, "crop size");
  expect_rejected({0, 0, 0, 5, 5}, -3, 1.3f, "crop size");
  expect_rejected({0, 0, 0, 5, 5}, 8, 0.0f, "scale");
  expect_rejected({0, 0, 0, 5, 5}, 8, nan, "scale");
  expect_rejected({0, -3e38f, 0, 3e38f, 5}, 8, 1.3f, "float32");
  expect_rejected({0, 0, 0, 5, 5}, 8, 1.3f, "frames must be", 0);
  char err[256];
  uint8_t out[3];
  const float box[5] = {0, 0, 0, 1, 1};
  CHECK(libdf_crop_rgb_cpu(nullptr, 1, 1, 1, box, 1, 1, 1.0f, out, 1, err, sizeof err) == LIBDF_EINVAL);
  CHECK(libdf_crop_rgb_cpu(out, 1, 1, 1, nullptr, 1, 1, 1.0f, out, 1, err, sizeof err) == LIBDF_EINVAL);
  // err buffers of length 0/1 are safe; zero boxes is a valid no-op even with NULL pointers.
  CHECK(libdf_crop_rgb_cpu(nullptr, 1, 1, 1, box, 1, 1, 1.0f, out, 1, err, 1) == LIBDF_EINVAL && err[0] == 0);
  CHECK(libdf_crop_rgb_cpu(nullptr, 1, 1, 1, box, 1, 1, 1.0f, out, 1, nullptr, 0) == LIBDF_EINVAL);
  CHECK(libdf_crop_rgb_cpu(nullptr, 1, 1, 1, nullptr, 0, 1, 1.0f, nullptr, 1, err, sizeof err) == LIBDF_OK);
  // NV12 layout errors.
  uint8_t y[16] = {0}, uv[8] = {0}, o[48];
  CHECK(libdf_crop_nv12_cpu(y, 16, 3, uv, 8, 4, 1, 4, 4, 0, 0, box, 1, 4, 1.0f, o, 1, err, sizeof err) == 1 &&
        strstr(err, "y_pitch") != nullptr);
  CHECK(libdf_crop_nv12_cpu(y, 16, 4, uv, 8, 4, 1, 4, 4, 7, 0, box, 1, 4, 1.0f, o, 1, err, sizeof err) == 1 &&
        strstr(err, "matrix") != nullptr);
  CHECK(libdf_crop_nv12_cpu(y, 16, 4, uv, 8, 3, 1, 4, 4, 0, 0, box, 1, 4, 1.0f, o, 1, err, sizeof err) == 1 &&
        strstr(err, "uv_pitch") != nullptr);
  CHECK(libdf_abi_version() == LIBDF_ABI_VERSION);
  CHECK(strstr(libdf_build_info(), "libdeepfake_crop") != nullptr);
}

// Runs the CUDA kernel's per-pixel function (libdf::crop_pixel) on the host over the whole launch grid.
template <typename Src>
Bytes emulate_kernel(const Src& src, int64_t f, int64_t h, int64_t w, const std::vector<float>& boxes, int s,
                     float scale) {
  const int64_t m = static_cast<int64_t>(boxes.size() / 5);
  Bytes out(static_cast<size_t>(m * s * s * 3), 0xCD);
  for (int64_t b = 0; b < m; ++b)
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < s; ++j)
        libdf::crop_pixel(src, f, h, w, boxes.data() + 5 * b, s, scale, i, j, out.data() + ((b * s + i) * s + j) * 3);
  return out;
}

void test_kernel_pixel_path_on_host() {
  std::mt19937 rng(13);
  for (const auto& dims : std::vector<std::array<int64_t, 3>>{{3, 61, 83}, {1, 1, 1}, {2, 7, 5}, {2, 1080 / 8, 1920 / 8}}) {
    const Frames fr = random_frames(dims[0], dims[1], dims[2], static_cast<uint32_t>(dims[1]));
    std::vector<float> boxes;
    std::uniform_real_distribution<float> pos(-40.f, static_cast<float>(std::max(dims[1], dims[2])) + 20.f),
        len(0.3f, 90.f);
    for (int b = 0; b < 25; ++b) {
      const float x = pos(rng), y = pos(rng);
      boxes.insert(boxes.end(), {static_cast<float>(b % dims[0]), x, y, x + len(rng), y + len(rng)});
    }
    boxes.insert(boxes.end(), {0, 1e7f, 1e7f, 1e7f + 50, 1e7f + 50});  // far outside
    for (int s : {1, 17, 40}) {
      const Bytes ref = run_crop(fr, boxes, s, 1.3f, 2);
      const Bytes emu = emulate_kernel(libdf::RgbSource{fr.data.data(), fr.h, fr.w}, fr.f, fr.h, fr.w, boxes, s, 1.3f);
      CHECK_MSG(emu == ref, "kernel pixel path != C++ reference (frame %lldx%lld, S=%d)",
                static_cast<long long>(fr.h), static_cast<long long>(fr.w), s);
    }
  }
  // NV12, pitched planes: kernel path == C++ NV12 reference.
  const int64_t F = 2, H = 26, W = 34, yp = 40, uvp = 38, yfs = yp * H + 4, uvfs = uvp * (H / 2) + 2;
  Bytes y(static_cast<size_t>(yfs * (F - 1) + yp * H)), uv(static_cast<size_t>(uvfs * (F - 1) + uvp * (H / 2)));
  for (auto& v : y) v = static_cast<uint8_t>(rng());
  for (auto& v : uv) v = static_cast<uint8_t>(rng());
  const std::vector<float> boxes = {0, 3, 4, 20, 19, 1, -5, -5, 12, 40, 1, 20.5f, 10.25f, 40, 30};
  Bytes ref(3 * 21 * 21 * 3);
  char err[256];
  CHECK(libdf_crop_nv12_cpu(y.data(), yfs, yp, uv.data(), uvfs, uvp, F, H, W, LIBDF_BT709, 0, boxes.data(), 3, 21,
                            1.3f, ref.data(), 1, err, sizeof err) == 0);
  const libdf::Nv12Source src{y.data(), uv.data(), yfs, yp, uvfs, uvp, libdf::yuv_coeffs(LIBDF_BT709, 0)};
  CHECK(emulate_kernel(src, F, H, W, boxes, 21, 1.3f) == ref);
  // Device boxes that were never validated (bad frame index, NaN, inf) give black or clamped pixels, never an
  // out-of-bounds read (this runs under AddressSanitizer in the sanitizer build).
  const Frames fr = random_frames(2, 9, 11, 14);
  const float nan = NAN, inf = INFINITY;
  const std::vector<float> wild = {5, 0, 0, 5, 5, -1, 0, 0, 5, 5, nan, 0, 0, 5, 5, 0, nan, nan, nan, nan,
                                   1, -inf, -inf, inf, inf, 1, 3, 3, 2, 2, 0, -3e38f, 0, 3e38f, 5};
  const Bytes out = emulate_kernel(libdf::RgbSource{fr.data.data(), fr.h, fr.w}, fr.f, fr.h, fr.w, wild, 6, 1.3f);
  for (size_t k = 0; k < 3 * 6 * 6 * 3; ++k) CHECK(out[k] == 0);  // the three bad frame indices
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases = {
      {"identity", test_identity},
      {"downscale", test_downscale},
      {"upscale", test_upscale},
      {"partly_outside", test_partly_outside},
      {"fully_outside", test_fully_outside},
      {"tiny_and_odd_frames", test_tiny_and_odd_frames},
      {"threads_agree", test_threads_agree},
      {"many_random_boxes", test_many_random_boxes},
      {"nv12_matrix_vs_double", test_nv12_matrix_vs_double},
      {"nv12_crop_equals_rgb_crop", test_nv12_crop_equals_rgb_crop},
      {"bad_input", test_bad_input},
      {"kernel_pixel_path_on_host", test_kernel_pixel_path_on_host},
  };
  if (argc != 2 || (cases.count(argv[1]) == 0 && std::string(argv[1]) != "all")) {
    fprintf(stderr, "usage: %s <case>|all; cases:", argv[0]);
    for (const auto& kv : cases) fprintf(stderr, " %s", kv.first.c_str());
    fprintf(stderr, "\n");
    return 2;
  }
  for (const auto& kv : cases) {
    if (kv.first == argv[1] || std::string(argv[1]) == "all") kv.second();
  }
  if (g_failures) fprintf(stderr, "%d check(s) failed\n", g_failures);
  return g_failures ? 1 : 0;
}
