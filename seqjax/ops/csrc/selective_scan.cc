// Mamba's selective scan (seqjax/ops/selective_scan.py) as two XLA FFI handlers for the CPU, float32:
//
//   a_t[d, n] = exp(dt_t[d] A[d, n])   (0 where resets_t: the state restarts)
//   h_t[d, n] = a_t[d, n] h_{t-1}[d, n] + dt_t[d] u_t[d] B_t[n]
//   y_t[d]    = sum_n C_t[n] h_t[d, n]
//
// Shapes: u, dt, y [batch, L, D]; A [D, N]; B, C [batch, L, N]; h0, hL [batch, D, N]; resets [batch, L];
// checkpoints [batch, ceil(L / chunk), D, N], the state entering each chunk of `chunk` tokens.
//
// The state of a block of channels (at most 16 x N floats) stays in registers/L1 across the whole sequence,
// one pass over the inputs: where XLA makes several passes over the [batch, D, N] state per token.
// The backward pass recomputes each chunk's states from its checkpoint (a [chunk, 16, N] buffer), then runs
// the adjoint recurrence lambda_t = C_t dy_t + a_{t+1} lambda_{t+1} backwards through it:
//
//   dC_t[n]  = sum_d h_t[d, n] dy_t[d]            dB_t[n] = sum_d lambda_t[d, n] dt_t[d] u_t[d]
//   g        = sum_n lambda_t[d, n] B_t[n]        du_t[d] = g dt_t[d],   ddt_t[d] = g u_t[d] + sum_n q A[d, n]
//   q[d, n]  = lambda_t[d, n] a_t[d, n] h_{t-1}[d, n]          dA[d, n] = sum_{b, t} q dt_t[d]
//   dh0      = a_1 lambda_1
//
// Work is split over (batch, channel block) pairs across std::threads; the sums over channels (dB, dC) and
// over the batch (dA) go to per-thread buffers added at the end.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 16;  // channels per work unit

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

// A work unit: sequence b's channels [d0, d0 + nd), whose [nd, N] states are contiguous in a [batch, D, N] array.
struct Unit {
  int64_t b, d0, nd;
};

struct Shape {
  int64_t batch, length, channels, states, chunk;
  Shape(const ffi::Buffer<ffi::F32>& u, const ffi::Buffer<ffi::F32>& A, int64_t chunk)
      : batch(u.dimensions()[0]), length(u.dimensions()[1]), channels(u.dimensions()[2]),
        states(A.dimensions()[1]), chunk(chunk) {}
  int64_t chunks() const { return (length + chunk - 1) / chunk; }
  int64_t blocks() const { return (channels + kBlock - 1) / kBlock; }
  int64_t units() const { return batch * blocks(); }
  Unit unit(int64_t i) const {
    const int64_t d0 = (i % blocks()) * kBlock;
    return {i / blocks(), d0, std::min(kBlock, channels - d0)};
  }
  int64_t state(const Unit& w) const { return (w.b * channels + w.d0) * states; }  // offset in [batch, D, N]
  int64_t checkpoint(const Unit& w, int64_t c) const {  // offset in [batch, chunks, D, N]
    return ((w.b * chunks() + c) * channels + w.d0) * states;
  }
};

// Threads for `units` independent pieces of work: one per core, at most one per piece.
int64_t workers_for(int64_t units) {
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  return std::max<int64_t>(1, std::min(cores, units));
}

// Runs body(unit, worker) for unit in [0, units) on `workers` threads (this one included), worker in [0, workers).
void parallel_for(int64_t units, int64_t workers, const std::function<void(int64_t, int64_t)>& body) {
  std::vector<std::thread> threads;
  for (int64_t w = 1; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int64_t i = w; i < units; i += workers) body(i, w);
    });
  }
  for (int64_t i = 0; i < units; i += workers) body(i, 0);
  for (auto& t : threads) t.join();
}

// One token for the block of channels [d0, d0 + nd) of one sequence, from the state `h_in` to `h_out` (each
// [nd, N]; they may be the same buffer): with kDecay it also writes the decays a_t to `decay`, with kOutput the
// outputs y_t[d] = sum_n C_t[n] h_t[d, n] to `y`.
template <bool kDecay, bool kOutput>
inline void token(const Shape& s, const float* A, const float* dt, const float* u, const float* b, const float* c,
                  bool reset, int64_t d0, int64_t nd, const float* h_in, float* h_out, float* decay, float* y) {
  const int64_t N = s.states;
  const float keep = reset ? 0.0f : 1.0f;
  for (int64_t j = 0; j < nd; ++j) {
    const float delta = dt[d0 + j], g = delta * u[d0 + j];
    const float* a_row = A + (d0 + j) * N;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t n = 0; n < N; ++n) {
      const float a = keep * exp_nonpositive(delta * a_row[n]);
      const float h = a * h_in[j * N + n] + g * b[n];
      h_out[j * N + n] = h;
      if constexpr (kDecay) decay[j * N + n] = a;
      if constexpr (kOutput) acc += c[n] * h;
    }
    if constexpr (kOutput) y[d0 + j] = acc;
  }
}

ffi::Error Forward(ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> dt, ffi::Buffer<ffi::F32> A,
                   ffi::Buffer<ffi::F32> B, ffi::Buffer<ffi::F32> C, ffi::Buffer<ffi::F32> h0,
                   ffi::Buffer<ffi::PRED> resets, ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> hL,
                   ffi::ResultBuffer<ffi::F32> checkpoints, int64_t chunk) {
  const Shape s(u, A, chunk);
  const int64_t L = s.length, D = s.channels, N = s.states;
  const float *pu = u.typed_data(), *pdt = dt.typed_data(), *pA = A.typed_data(), *pB = B.typed_data(),
              *pC = C.typed_data(), *ph0 = h0.typed_data();
  const bool* pr = resets.typed_data();
  float *py = y->typed_data(), *phL = hL->typed_data(), *pck = checkpoints->typed_data();
  parallel_for(s.units(), workers_for(s.units()), [&](int64_t i, int64_t) {
    const Unit w = s.unit(i);
    const int64_t bytes = w.nd * N * sizeof(float);
    std::vector<float> h(ph0 + s.state(w), ph0 + s.state(w) + w.nd * N);
    for (int64_t t = 0; t < L; ++t) {
      if (t % chunk == 0) std::memcpy(pck + s.checkpoint(w, t / chunk), h.data(), bytes);
      const int64_t bt = w.b * L + t;
      token<false, true>(s, pA, pdt + bt * D, pu + bt * D, pB + bt * N, pC + bt * N, pr[bt], w.d0, w.nd, h.data(),
                         h.data(), nullptr, py + bt * D);
    }
    std::memcpy(phL + s.state(w), h.data(), bytes);
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> dt, ffi::Buffer<ffi::F32> A,
                    ffi::Buffer<ffi::F32> B, ffi::Buffer<ffi::F32> C, ffi::Buffer<ffi::PRED> resets,
                    ffi::Buffer<ffi::F32> checkpoints, ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> dhL,
                    ffi::ResultBuffer<ffi::F32> du, ffi::ResultBuffer<ffi::F32> ddt, ffi::ResultBuffer<ffi::F32> dA,
                    ffi::ResultBuffer<ffi::F32> dB, ffi::ResultBuffer<ffi::F32> dC, ffi::ResultBuffer<ffi::F32> dh0,
                    int64_t chunk) {
  const Shape s(u, A, chunk);
  const int64_t L = s.length, D = s.channels, N = s.states;
  const float *pu = u.typed_data(), *pdt = dt.typed_data(), *pA = A.typed_data(), *pB = B.typed_data(),
              *pC = C.typed_data(), *pck = checkpoints.typed_data(), *pdy = dy.typed_data(),
              *pdhL = dhL.typed_data();
  const bool* pr = resets.typed_data();
  float *pdu = du->typed_data(), *pddt = ddt->typed_data(), *pdh0 = dh0->typed_data();
  const int64_t workers = workers_for(s.units()), seq = s.batch * L * N;
  // per worker: dA [D, N], dB and dC [batch, L, N]
  std::vector<std::vector<float>> sums(workers, std::vector<float>(D * N + 2 * seq, 0.0f));
  parallel_for(s.units(), workers, [&](int64_t i, int64_t worker) {
    const Unit w = s.unit(i);
    const int64_t b = w.b, d0 = w.d0, nd = w.nd;
    float* sdA = sums[worker].data();
    float* sdB = sdA + D * N;
    float* sdC = sdB + seq;
    const int64_t size = nd * N;
    std::vector<float> hs((chunk + 1) * size), decays(chunk * size);
    std::vector<float> carry(pdhL + s.state(w), pdhL + s.state(w) + size);  // a_{t+1} lambda_{t+1}
    for (int64_t c = s.chunks() - 1; c >= 0; --c) {
      const int64_t start = c * chunk, stop = std::min(L, start + chunk);
      // hs[k] = h_{start + k - 1}: hs[0] the state entering the chunk
      std::memcpy(hs.data(), pck + s.checkpoint(w, c), size * sizeof(float));
      for (int64_t t = start; t < stop; ++t) {
        const int64_t k = t - start, bt = b * L + t;
        token<true, false>(s, pA, pdt + bt * D, pu + bt * D, pB + bt * N, nullptr, pr[bt], d0, nd, &hs[k * size],
                           &hs[(k + 1) * size], &decays[k * size], nullptr);
      }
      for (int64_t t = stop - 1; t >= start; --t) {
        const int64_t k = t - start, bt = b * L + t;
        const float *h = &hs[(k + 1) * size], *h_prev = &hs[k * size], *a = &decays[k * size];
        const float *bn = pB + bt * N, *cn = pC + bt * N;
        float *dbn = sdB + bt * N, *dcn = sdC + bt * N;
        for (int64_t j = 0; j < nd; ++j) {
          const int64_t d = d0 + j;
          const float delta = pdt[bt * D + d], ud = pu[bt * D + d], dyd = pdy[bt * D + d], g = delta * ud;
          const float* a_row = pA + d * N;
          float* cj = &carry[j * N];
          float* dA_row = sdA + d * N;
          float gsum = 0.0f, qsum = 0.0f;
#pragma omp simd reduction(+ : gsum, qsum)
          for (int64_t n = 0; n < N; ++n) {
            const float l = cj[n] + cn[n] * dyd;
            const float q = l * a[j * N + n] * h_prev[j * N + n];
            dcn[n] += h[j * N + n] * dyd;
            dbn[n] += l * g;
            gsum += l * bn[n];
            qsum += q * a_row[n];
            dA_row[n] += q * delta;
            cj[n] = a[j * N + n] * l;
          }
          pdu[bt * D + d] = gsum * delta;
          pddt[bt * D + d] = gsum * ud + qsum;
        }
      }
    }
    std::memcpy(pdh0 + s.state(w), carry.data(), size * sizeof(float));
  });
  float *pdA = dA->typed_data(), *pdB = dB->typed_data(), *pdC = dC->typed_data();
  std::fill(pdA, pdA + D * N, 0.0f);
  std::fill(pdB, pdB + seq, 0.0f);
  std::fill(pdC, pdC + seq, 0.0f);
  for (const auto& part : sums) {
    for (int64_t i = 0; i < D * N; ++i) pdA[i] += part[i];
    for (int64_t i = 0; i < seq; ++i) pdB[i] += part[D * N + i];
    for (int64_t i = 0; i < seq; ++i) pdC[i] += part[D * N + seq + i];
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SelectiveScanForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // u
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dt
                                  .Arg<ffi::Buffer<ffi::F32>>()  // A
                                  .Arg<ffi::Buffer<ffi::F32>>()  // B
                                  .Arg<ffi::Buffer<ffi::F32>>()  // C
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // resets
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Ret<ffi::Buffer<ffi::F32>>()  // hL
                                  .Ret<ffi::Buffer<ffi::F32>>()  // checkpoints
                                  .Attr<int64_t>("chunk"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SelectiveScanBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // u
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dt
                                  .Arg<ffi::Buffer<ffi::F32>>()  // A
                                  .Arg<ffi::Buffer<ffi::F32>>()  // B
                                  .Arg<ffi::Buffer<ffi::F32>>()  // C
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // resets
                                  .Arg<ffi::Buffer<ffi::F32>>()  // checkpoints
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dhL
                                  .Ret<ffi::Buffer<ffi::F32>>()  // du
                                  .Ret<ffi::Buffer<ffi::F32>>()  // ddt
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dA
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dB
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dC
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dh0
                                  .Attr<int64_t>("chunk"));
