// SPDX-License-Identifier: MIT
// The CUDA kernels against the C++ reference, bit for bit (same header, no FMA contraction on either side).
// Exits 77 (ctest: skipped) when no usable GPU is present.
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include <random>
#include <vector>

#include "libdf/crop.h"

#define CUDA_OK(x)                                                                      \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

template <typename T>
T* to_device(const std::vector<T>& v) {
  T* p = nullptr;
  if (cudaMalloc(&p, v.size() * sizeof(T)) != cudaSuccess) return nullptr;
  cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return p;
}

int main() {
  char err[512] = {0};
  if (libdf_cuda_probe(0, err, sizeof err) != LIBDF_OK) {
    printf("skipped: %s\n", err);
    return 77;
  }
  std::mt19937 rng(1);
  const int64_t F = 3, H = 181, W = 243, S = 67;
  std::vector<uint8_t> frames(F * H * W * 3);
  for (auto& v : frames) v = static_cast<uint8_t>(rng());
  std::vector<float> boxes;
  std::uniform_real_distribution<float> pos(-40.f, 260.f), len(0.7f, 150.f);
  for (int b = 0; b < 50; ++b) {
    const float x = pos(rng), y = pos(rng);
    boxes.insert(boxes.end(), {static_cast<float>(b % F), x, y, x + len(rng), y + len(rng)});
  }
  const int64_t M = static_cast<int64_t>(boxes.size() / 5);
  std::vector<uint8_t> want(M * S * S * 3), got(want.size());
  if (libdf_crop_rgb_cpu(frames.data(), F, H, W, boxes.data(), M, S, 1.3f, want.data(), 0, err, sizeof err)) {
    fprintf(stderr, "cpu: %s\n", err);
    return 1;
  }
  uint8_t* d_frames = to_device(frames);
  float* d_boxes = to_device(boxes);
  uint8_t* d_out = nullptr;
  CUDA_OK(cudaMalloc(&d_out, got.size()));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  if (libdf_crop_rgb_cuda(0, stream, d_frames, F, H, W, boxes.data(), d_boxes, M, S, 1.3f, d_out, err, sizeof err)) {
    fprintf(stderr, "cuda: %s\n", err);
    return 1;
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost));
  size_t diff = 0;
  for (size_t i = 0; i < got.size(); ++i) diff += got[i] != want[i];
  printf("rgb: %zu of %zu bytes differ\n", diff, got.size());
  int failures = diff != 0;

  // NV12 frames as one [F, H*3/2, W] buffer (H, W even here).
  const int64_t h2 = 180, w2 = 242;
  std::vector<uint8_t> nv12(F * h2 * 3 / 2 * w2);
  for (auto& v : nv12) v = static_cast<uint8_t>(rng());
  const int64_t fs = h2 * 3 / 2 * w2;
  if (libdf_crop_nv12_cpu(nv12.data(), fs, w2, nv12.data() + h2 * w2, fs, w2, F, h2, w2, LIBDF_BT709, 0,
                          boxes.data(), M, S, 1.3f, want.data(), 0, err, sizeof err)) {
    fprintf(stderr, "cpu nv12: %s\n", err);
    return 1;
  }
  uint8_t* d_nv12 = to_device(nv12);
  if (libdf_crop_nv12_cuda(0, stream, d_nv12, fs, w2, d_nv12 + h2 * w2, fs, w2, F, h2, w2, LIBDF_BT709, 0,
                           boxes.data(), d_boxes, M, S, 1.3f, d_out, err, sizeof err)) {
    fprintf(stderr, "cuda nv12: %s\n", err);
    return 1;
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaMemcpy(got.data(), d_out, got.size(), cudaMemcpyDeviceToHost));
  diff = 0;
  for (size_t i = 0; i < got.size(); ++i) diff += got[i] != want[i];
  printf("nv12: %zu of %zu bytes differ\n", diff, got.size());
  failures += diff != 0;

  // Rejected before launch.
  boxes[3] = boxes[1];
  const int rc = libdf_crop_rgb_cuda(0, stream, d_frames, F, H, W, boxes.data(), d_boxes, M, S, 1.3f, d_out, err,
                                     sizeof err);
  printf("bad box: rc=%d %s\n", rc, err);
  failures += rc != LIBDF_EINVAL;
  cudaFree(d_frames);
  cudaFree(d_boxes);
  cudaFree(d_out);
  cudaFree(d_nv12);
  cudaStreamDestroy(stream);
  return failures ? 1 : 0;
}
