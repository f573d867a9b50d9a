// Masked softmax attention (seqjax/ops/attention_native.py) as two XLA FFI handlers for the CPU, float32,
// without the [T, S] weights ever in memory:
//
//   x_ts  = scale q_t . k_s                       (per batch row b and head h)
//   p_ts  = exp(x_ts - m_t) / l_t  where mask_ts,  0 elsewhere
//   m_t   = max_{s: mask_ts} x_ts,   l_t = sum_{s: mask_ts} exp(x_ts - m_t)
//   y_t   = sum_s p_ts v_s                        (0 for a query that sees no key)
//
// and its gradient, with delta_t = dy_t . y_t:
//
//   dp_ts = dy_t . v_s,   ds_ts = p_ts (dp_ts - delta_t)
//   dq_t  = scale sum_s ds_ts k_s,   dk_s = scale sum_t ds_ts q_t,   dv_s = sum_t p_ts dy_t
//
// Shapes: q, dy, y [batch, T, H, Dh]; k, v [batch, S, H, Dh]; mask [batch, T, S] (bool); m, l_inv [batch, H, T]
// (saved by the forward pass for the backward pass).
//
// A work unit is 16 queries of one batch row, each head in turn, with the queries in the vector lanes (the forward
// pass and dq), or 16 keys with the keys in the lanes (dk, dv). The unit first reads its 16 lanes of the mask for
// every key (query) once for all heads, and skips a key (query) whose 16 entries are all false, so a causal mask
// costs half the work of a full one and padding none; the rest are taken four at a time (four independent
// multiply-add chains).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using seqjax::exp_nonpositive;
using seqjax::parallel_for;
using seqjax::workers_for;

constexpr int64_t kLanes = 16;  // queries (or keys) per work unit

struct Shape {
  int64_t batch, queries, keys, heads, dim;
  Shape(const ffi::Buffer<ffi::F32>& q, const ffi::Buffer<ffi::F32>& k)
      : batch(q.dimensions()[0]), queries(q.dimensions()[1]), keys(k.dimensions()[1]), heads(q.dimensions()[2]),
        dim(q.dimensions()[3]) {}
  int64_t tiles(int64_t length) const { return (length + kLanes - 1) / kLanes; }
  // offset of row t of sequence b, head h in a [batch, length, H, Dh] array
  int64_t row(int64_t b, int64_t t, int64_t h, int64_t length) const { return ((b * length + t) * heads + h) * dim; }
  int64_t stat(int64_t b, int64_t h, int64_t t) const { return (b * heads + h) * queries + t; }  // in [batch, H, T]
};

// A unit's lanes: rows [t0, t0 + n) of a [batch, length, H, Dh] array, scaled and transposed to
// x[d * kLanes + j] (zeros in lanes j >= n); and back, scaled
struct Tile {
  int64_t t0, n;
  void load(const Shape& s, const float* a, float scale, int64_t b, int64_t h, int64_t length, float* x) const {
    std::fill(x, x + s.dim * kLanes, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float* r = a + s.row(b, t0 + j, h, length);
      for (int64_t d = 0; d < s.dim; ++d) x[d * kLanes + j] = scale * r[d];
    }
  }
  void store(const Shape& s, const float* x, float scale, int64_t b, int64_t h, int64_t length, float* a) const {
    for (int64_t j = 0; j < n; ++j) {
      float* r = a + s.row(b, t0 + j, h, length);
      for (int64_t d = 0; d < s.dim; ++d) r[d] = scale * x[d * kLanes + j];
    }
  }
  // a row's 16 mask entries (`m`, the tile's lanes: 0 past its end) as 0 / 1 in `on`; whether any is 1
  static bool visible(const uint8_t* m, float* on) {
    uint64_t halves[2];
    std::memcpy(halves, m, sizeof halves);
    if ((halves[0] | halves[1]) == 0) return false;
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) on[j] = m[j] ? 1.0f : 0.0f;
    return true;
  }
};

constexpr int kGroup = 4;  // rows (keys, or queries) processed together: four independent multiply-add chains

// out[g][j] = sum_d xs[d * kLanes + j] r[g][d]: the lanes' dot products with kGroup rows
inline void dots(int64_t dim, const float* xs, const float* const* r, float (*out)[kLanes]) {
  alignas(64) float acc[kGroup][kLanes] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const float *x = xs + d * kLanes, r0 = r[0][d], r1 = r[1][d], r2 = r[2][d], r3 = r[3][d];
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) {
      acc[0][j] += x[j] * r0;
      acc[1][j] += x[j] * r1;
      acc[2][j] += x[j] * r2;
      acc[3][j] += x[j] * r3;
    }
  }
  std::memcpy(out, acc, sizeof acc);
}

// xs[d * kLanes + j] += sum_g w[g][j] r[g][d]: the lanes' update by kGroup weighted rows
inline void update(int64_t dim, const float (*w)[kLanes], const float* const* r, float* xs) {
  for (int64_t d = 0; d < dim; ++d) {
    float* x = xs + d * kLanes;
    const float r0 = r[0][d], r1 = r[1][d], r2 = r[2][d], r3 = r[3][d];
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) x[j] += (w[0][j] * r0 + w[1][j] * r1) + (w[2][j] * r2 + w[3][j] * r3);
  }
}

// p[j] = on[j] exp(x[j] - m[j]) l_inv[j]: the lanes' softmax weights from their statistics
inline void weights(const float* x, const float* on, const float* m, const float* l_inv, float* p) {
#pragma omp simd
  for (int64_t j = 0; j < kLanes; ++j) p[j] = on[j] * exp_nonpositive(std::min(x[j] - m[j], 0.0f)) * l_inv[j];
}

// The rows a unit's lanes see (keys for a query tile, queries for a key tile), kGroup at a time: row indices,
// their 0 / 1 lanes, and row pointers into arrays of `dim`-wide rows; a short last group is padded with a row of
// zeros whose lanes are all off.
struct Rows {
  std::vector<int64_t> index;
  std::vector<float> on;  // [rows, kLanes]
  const std::vector<float>& zeros;
  // row pointers of group g into `base` (row i at base + offset(i))
  template <typename Offset>
  void group(int64_t g, const float* base, Offset offset, const float** r) const {
    for (int u = 0; u < kGroup; ++u) {
      const int64_t i = g * kGroup + u;
      r[u] = i < static_cast<int64_t>(index.size()) ? base + offset(index[i]) : zeros.data();
    }
  }
  int64_t groups() const { return (static_cast<int64_t>(index.size()) + kGroup - 1) / kGroup; }
  const float* lanes(int64_t i) const { return &on[i * kLanes]; }
  // the rows [0, count) the tile sees, of a batch row's [T, S] mask (rows of `width` = S): the keys a query tile
  // sees (`keys`: lane j of row i is mask[t0 + j, i], gathered a query's row at a time) or the queries a key tile
  // sees (lane j of row i is mask[i, t0 + j], contiguous)
  Rows(const Tile& tile, const bool* mask, int64_t count, int64_t width, bool keys, const std::vector<float>& zeros)
      : on((count + kGroup) * kLanes, 0.0f), zeros(zeros) {  // past the rows seen, padding rows: off
    std::vector<uint8_t> block(count * kLanes, 0);  // [count, kLanes] lanes of each row
    if (keys) {
      for (int64_t j = 0; j < tile.n; ++j) {
        const bool* query = mask + (tile.t0 + j) * width;
        for (int64_t i = 0; i < count; ++i) block[i * kLanes + j] = query[i];
      }
    } else {
      for (int64_t i = 0; i < count; ++i) std::memcpy(&block[i * kLanes], mask + i * width + tile.t0, tile.n);
    }
    index.reserve(count);  // a row's lanes are written only when it is seen: the slots after the last stay off
    for (int64_t i = 0; i < count; ++i)
      if (Tile::visible(&block[i * kLanes], &on[index.size() * kLanes])) index.push_back(i);
  }
};

ffi::Error Forward(ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                   ffi::Buffer<ffi::PRED> mask, ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::F32> m,
                   ffi::ResultBuffer<ffi::F32> l_inv, float scale) {
  const Shape s(q, k);
  const int64_t tiles = s.tiles(s.queries), units = s.batch * tiles, S = s.keys, T = s.queries;
  const float *pq = q.typed_data(), *pk = k.typed_data(), *pv = v.typed_data();
  const bool* pmask = mask.typed_data();
  float *py = y->typed_data(), *pm = m->typed_data(), *pl = l_inv->typed_data();
  const std::vector<float> zeros(s.dim, 0.0f);
  parallel_for(units, workers_for(units), [&](int64_t i, int64_t) {
    const int64_t b = i / tiles, t0 = (i % tiles) * kLanes;
    const Tile tile{t0, std::min(kLanes, T - t0)};
    const Rows keys(tile, pmask + b * T * S, S, S, true, zeros);  // the same for every head
    std::vector<float> qs(s.dim * kLanes), acc(s.dim * kLanes), x((keys.groups() * kGroup) * kLanes);
    for (int64_t h = 0; h < s.heads; ++h) {
      auto key_row = [&](int64_t key) { return s.row(b, key, h, S); };
      std::fill(acc.begin(), acc.end(), 0.0f);
      tile.load(s, pq, scale, b, h, T, qs.data());
      alignas(64) float mx[kLanes], l[kLanes] = {0}, p[kGroup][kLanes], linv[kLanes];
      const float ones[kLanes] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
      std::fill(mx, mx + kLanes, -3.0e38f);
      const float* r[kGroup];
      for (int64_t g = 0; g < keys.groups(); ++g) {  // x_ts and the running max over the visible keys
        keys.group(g, pk, key_row, r);
        float(*xg)[kLanes] = reinterpret_cast<float(*)[kLanes]>(&x[g * kGroup * kLanes]);
        dots(s.dim, qs.data(), r, xg);
        for (int u = 0; u < kGroup; ++u) {
          const float* on = keys.lanes(g * kGroup + u);
#pragma omp simd
          for (int64_t j = 0; j < kLanes; ++j) mx[j] = std::max(mx[j], on[j] != 0.0f ? xg[u][j] : -3.0e38f);
        }
      }
      for (int64_t g = 0; g < keys.groups(); ++g) {  // exp(x_ts - m_t), summed, and y's update
        for (int u = 0; u < kGroup; ++u) {
          weights(&x[(g * kGroup + u) * kLanes], keys.lanes(g * kGroup + u), mx, ones, p[u]);
          for (int64_t j = 0; j < kLanes; ++j) l[j] += p[u][j];
        }
        keys.group(g, pv, key_row, r);
        update(s.dim, p, r, acc.data());
      }
      for (int64_t j = 0; j < kLanes; ++j) linv[j] = l[j] > 0.0f ? 1.0f / l[j] : 0.0f;
      for (int64_t d = 0; d < s.dim; ++d)
        for (int64_t j = 0; j < kLanes; ++j) acc[d * kLanes + j] *= linv[j];
      tile.store(s, acc.data(), 1.0f, b, h, T, py);
      for (int64_t j = 0; j < tile.n; ++j) {
        pm[s.stat(b, h, t0 + j)] = mx[j];
        pl[s.stat(b, h, t0 + j)] = linv[j];
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                    ffi::Buffer<ffi::PRED> mask, ffi::Buffer<ffi::F32> y,
                    ffi::Buffer<ffi::F32> m, ffi::Buffer<ffi::F32> l_inv, ffi::Buffer<ffi::F32> dy,
                    ffi::ResultBuffer<ffi::F32> dq, ffi::ResultBuffer<ffi::F32> dk, ffi::ResultBuffer<ffi::F32> dv,
                    float scale) {
  const Shape s(q, k);
  const int64_t T = s.queries, S = s.keys, Dh = s.dim;
  const float *pq = q.typed_data(), *pk = k.typed_data(), *pv = v.typed_data(), *py = y.typed_data(),
              *pm = m.typed_data(), *pl = l_inv.typed_data(), *pdy = dy.typed_data();
  const bool* pmask = mask.typed_data();
  float *pdq = dq->typed_data(), *pdk = dk->typed_data(), *pdv = dv->typed_data();
  const std::vector<float> zeros(Dh, 0.0f);
  std::vector<float> deltas(s.batch * s.heads * T);  // delta_t = dy_t . y_t, [batch, H, T]
  float* pdelta = deltas.data();
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < s.heads; ++h) {
        const float *r = py + s.row(b, t, h, T), *g = pdy + s.row(b, t, h, T);
        float total = 0.0f;
        for (int64_t d = 0; d < Dh; ++d) total += r[d] * g[d];
        pdelta[s.stat(b, h, t)] = total;
      }
  // dq: 16 queries in the lanes, over the keys they see
  const int64_t q_tiles = s.tiles(T), q_units = s.batch * q_tiles;
  parallel_for(q_units, workers_for(q_units), [&](int64_t i, int64_t) {
    const int64_t b = i / q_tiles, t0 = (i % q_tiles) * kLanes;
    const Tile tile{t0, std::min(kLanes, T - t0)};
    const Rows keys(tile, pmask + b * T * S, S, S, true, zeros);
    std::vector<float> qs(Dh * kLanes), gs(Dh * kLanes), acc(Dh * kLanes);
    for (int64_t h = 0; h < s.heads; ++h) {
      auto key_row = [&](int64_t key) { return s.row(b, key, h, S); };
      std::fill(acc.begin(), acc.end(), 0.0f);
      tile.load(s, pq, scale, b, h, T, qs.data());
      tile.load(s, pdy, 1.0f, b, h, T, gs.data());
      alignas(64) float mx[kLanes] = {0}, linv[kLanes] = {0}, dl[kLanes] = {0}, x[kGroup][kLanes],
                        dp[kGroup][kLanes], ds[kGroup][kLanes];
      for (int64_t j = 0; j < tile.n; ++j) {
        mx[j] = pm[s.stat(b, h, t0 + j)];
        linv[j] = pl[s.stat(b, h, t0 + j)];
        dl[j] = pdelta[s.stat(b, h, t0 + j)];
      }
      const float *kr[kGroup], *vr[kGroup];
      for (int64_t g = 0; g < keys.groups(); ++g) {
        keys.group(g, pk, key_row, kr);
        keys.group(g, pv, key_row, vr);
        dots(Dh, qs.data(), kr, x);
        dots(Dh, gs.data(), vr, dp);
        for (int u = 0; u < kGroup; ++u) {
          weights(x[u], keys.lanes(g * kGroup + u), mx, linv, x[u]);  // x := p
#pragma omp simd
          for (int64_t j = 0; j < kLanes; ++j) ds[u][j] = x[u][j] * (dp[u][j] - dl[j]);
        }
        update(Dh, ds, kr, acc.data());
      }
      tile.store(s, acc.data(), scale, b, h, T, pdq);
    }
  });
  // dk, dv: 16 keys in the lanes, over the queries that see them
  const int64_t k_tiles = s.tiles(S), k_units = s.batch * k_tiles;
  parallel_for(k_units, workers_for(k_units), [&](int64_t i, int64_t) {
    const int64_t b = i / k_tiles, s0 = (i % k_tiles) * kLanes;
    const Tile tile{s0, std::min(kLanes, S - s0)};
    const Rows queries(tile, pmask + b * T * S, T, S, false, zeros);
    std::vector<float> ks(Dh * kLanes), vs(Dh * kLanes), dks(Dh * kLanes), dvs(Dh * kLanes);
    for (int64_t h = 0; h < s.heads; ++h) {
      auto query_row = [&](int64_t t) { return s.row(b, t, h, T); };
      std::fill(dks.begin(), dks.end(), 0.0f);
      std::fill(dvs.begin(), dvs.end(), 0.0f);
      tile.load(s, pk, scale, b, h, S, ks.data());
      tile.load(s, pv, 1.0f, b, h, S, vs.data());
      alignas(64) float x[kGroup][kLanes], dp[kGroup][kLanes], ds[kGroup][kLanes], mx[kLanes], linv[kLanes];
      const float *qr[kGroup], *gr[kGroup];
      for (int64_t g = 0; g < queries.groups(); ++g) {
        queries.group(g, pq, query_row, qr);
        queries.group(g, pdy, query_row, gr);
        dots(Dh, ks.data(), qr, x);
        dots(Dh, vs.data(), gr, dp);
        for (int u = 0; u < kGroup; ++u) {
          const int64_t row = g * kGroup + u;
          const bool real = row < static_cast<int64_t>(queries.index.size());
          const int64_t t = real ? queries.index[row] : 0;
          std::fill(mx, mx + kLanes, real ? pm[s.stat(b, h, t)] : 0.0f);
          std::fill(linv, linv + kLanes, real ? pl[s.stat(b, h, t)] : 0.0f);
          const float dl = real ? pdelta[s.stat(b, h, t)] : 0.0f;
          weights(x[u], queries.lanes(row), mx, linv, x[u]);  // x := p
#pragma omp simd
          for (int64_t j = 0; j < kLanes; ++j) ds[u][j] = x[u][j] * (dp[u][j] - dl);
        }
        update(Dh, x, gr, dvs.data());
        update(Dh, ds, qr, dks.data());
      }
      tile.store(s, dks.data(), scale, b, h, S, pdk);
      tile.store(s, dvs.data(), 1.0f, b, h, S, pdv);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(AttentionForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask [batch, T, S]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // y
                                  .Ret<ffi::Buffer<ffi::F32>>()  // m
                                  .Ret<ffi::Buffer<ffi::F32>>()  // l_inv
                                  .Attr<float>("scale"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(AttentionBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask [batch, T, S]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // y
                                  .Arg<ffi::Buffer<ffi::F32>>()  // m
                                  .Arg<ffi::Buffer<ffi::F32>>()  // l_inv
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dy
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dk
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dv
                                  .Attr<float>("scale"));
