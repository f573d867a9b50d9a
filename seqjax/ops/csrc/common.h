// What the compiled kernels share: a vectorizable exp and the threads that split their work.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace seqjax {

// exp(x) for x <= 0 to ~2 ulp (Cephes' expf: x = k ln 2 + r, a degree-6 polynomial in r, times 2^k), written
// so that the compiler vectorizes a loop of it; x below -87 gives ~1e-38 instead of 0.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Threads for `units` independent pieces of work: one per core this process may run on (its affinity mask:
// a SLURM job's CPUs, not the node's), at most one per piece.
inline int64_t workers_for(int64_t units) {
  int64_t cores = std::thread::hardware_concurrency();
#ifdef __linux__
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) cores = CPU_COUNT(&mask);
#endif
  return std::max<int64_t>(1, std::min(cores, units));
}

// Runs body(unit, worker) for unit in [0, units) on `workers` threads (this one included), worker in [0, workers).
inline void parallel_for(int64_t units, int64_t workers, const std::function<void(int64_t, int64_t)>& body) {
  std::vector<std::thread> threads;
  for (int64_t w = 1; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int64_t i = w; i < units; i += workers) body(i, w);
    });
  }
  for (int64_t i = 0; i < units; i += workers) body(i, 0);
  for (auto& t : threads) t.join();
}

}  // namespace seqjax
