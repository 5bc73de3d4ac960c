// Fused nearest-code search for CPU: dot products and a running maximum in
// registers, never a score in memory (see qbench/_fused_kernel.py).
//
// Register tiling: one vector of W codes (AVX-512: 16, else 8) is loaded once
// per input dimension and multiplied into RB = 4 rows' accumulators, so each
// load feeds 4 fused multiply-adds.  Cache tiling: a thread works through
// `row_chunk` rows against `code_chunk` codes at a time, a slice of the
// codebook that stays in L2 while every row of the chunk passes over it.
// Each lane keeps its own best (score, index) with a strict >, so within a
// lane the lowest index wins a tie; lanes and chunks are merged with the same
// rule, so the result is the first index of the row maximum.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace {
#ifdef __AVX512F__
constexpr int W = 16;
#else
constexpr int W = 8;
#endif
typedef float vec __attribute__((vector_size(W * 4)));
constexpr int RB = 4;

inline vec load(const float* p) { vec v; std::memcpy(&v, p, sizeof(vec)); return v; }
inline vec splat(float s) { return vec{} + s; }

// Scores bias[c] + x.c for codes [c0, c1); indices travel as floats (exact below 2^24).
template <int D>
void tile_rows(const float* x, int64_t d_rt, int64_t nrows, const float* codes_t, int64_t vpad,
               const float* bias, int64_t c0, int64_t c1, float* best_v, float* best_i) {
  const int64_t d = D > 0 ? D : d_rt;
  vec iota;
  for (int j = 0; j < W; ++j) iota[j] = (float)j;
  std::vector<float> xdyn(D > 0 ? 0 : d * RB);
  for (int64_t r0 = 0; r0 < nrows; r0 += RB) {
    const int64_t rn = std::min<int64_t>(RB, nrows - r0);
    float xfix[(D > 0 ? D : 1) * RB];
    float* xs = D > 0 ? xfix : xdyn.data();
    for (int64_t k = 0; k < d; ++k)
      for (int r = 0; r < RB; ++r) xs[k * RB + r] = r < rn ? x[(r0 + r) * d + k] : 0.f;
    vec lane_v[RB], lane_i[RB];
    for (int r = 0; r < RB; ++r) {
      lane_v[r] = splat(-std::numeric_limits<float>::infinity());
      lane_i[r] = splat(0.f);
    }
    for (int64_t c = c0; c < c1; c += W) {
      const vec b = load(bias + c);
      vec acc[RB];
      for (int r = 0; r < RB; ++r) acc[r] = b;
      for (int64_t k = 0; k < d; ++k) {
        const vec ck = load(codes_t + k * vpad + c);
        for (int r = 0; r < RB; ++r) acc[r] += xs[k * RB + r] * ck;
      }
      const vec idx = iota + (float)c;
      for (int r = 0; r < RB; ++r) {
        auto better = acc[r] > lane_v[r];
        lane_v[r] = better ? acc[r] : lane_v[r];
        lane_i[r] = better ? idx : lane_i[r];
      }
    }
    for (int64_t r = 0; r < rn; ++r) {
      float bv = lane_v[r][0], bi = lane_i[r][0];
      for (int j = 1; j < W; ++j)
        if (lane_v[r][j] > bv || (lane_v[r][j] == bv && lane_i[r][j] < bi)) {
          bv = lane_v[r][j];
          bi = lane_i[r][j];
        }
      if (bv > best_v[r0 + r]) {
        best_v[r0 + r] = bv;
        best_i[r0 + r] = bi;
      }
    }
  }
}
}  // namespace

int64_t lanes() { return W; }

// x (N, d) and codes_t (d, vpad) contiguous float32, bias (vpad); vpad a multiple of lanes().
// Returns the best code per row as float32 indices; a row whose every score is NaN gets -1.
torch::Tensor nearest(torch::Tensor x, torch::Tensor codes_t, torch::Tensor bias, int64_t code_chunk,
                      int64_t row_chunk) {
  const int64_t n = x.size(0), d = x.size(1), vpad = codes_t.size(1);
  auto best_i = torch::full({n}, -1.0f, torch::kFloat);
  auto best_v = torch::full({n}, -std::numeric_limits<float>::infinity(), torch::kFloat);
  const float* xp = x.data_ptr<float>();
  const float* cp = codes_t.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  float* bvp = best_v.data_ptr<float>();
  float* bip = best_i.data_ptr<float>();
  at::parallel_for(0, n, row_chunk, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; s += row_chunk) {
      const int64_t e = std::min(end, s + row_chunk);
      for (int64_t c0 = 0; c0 < vpad; c0 += code_chunk) {
        const int64_t c1 = std::min(vpad, c0 + code_chunk);
#define QB_CASE(K) \
  case K: tile_rows<K>(xp + s * d, d, e - s, cp, vpad, bp, c0, c1, bvp + s, bip + s); break;
        switch (d) {
          QB_CASE(1) QB_CASE(2) QB_CASE(3) QB_CASE(4) QB_CASE(6) QB_CASE(8) QB_CASE(12) QB_CASE(16) QB_CASE(32)
          default: tile_rows<0>(xp + s * d, d, e - s, cp, vpad, bp, c0, c1, bvp + s, bip + s); break;
        }
      }
    }
  });
  return best_i;
}

// Exact search on the unit circle (see qbench/_circle_lookup.py): u (N, 2) unit
// rows; angles (M) the codes' angles sorted ascending, c0, c1 and index the
// sorted codes and their indices.  Each query scores every code whose cosine
// is within `margin` of the nearest angle's, with the kernel's rounding
// (fma(u1, c1, u0 * c0)), and keeps the first index of the maximum.  Rows
// whose window would take the whole circle get -1 (the caller scans them).
torch::Tensor circle(torch::Tensor u, torch::Tensor angles, torch::Tensor c0, torch::Tensor c1, torch::Tensor index,
                     int64_t first_zero, double margin) {
  const int64_t n = u.size(0), m = angles.size(0);
  auto out = torch::empty({n}, torch::kLong);
  const float* up = u.data_ptr<float>();
  const double* ap = angles.data_ptr<double>();
  const float* c0p = c0.data_ptr<float>();
  const float* c1p = c1.data_ptr<float>();
  const int64_t* ip = index.data_ptr<int64_t>();
  int64_t* op = out.data_ptr<int64_t>();
  const double two_pi = 2 * M_PI;
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float u0 = up[2 * i], u1 = up[2 * i + 1];
      const double theta = std::atan2((double)u1, (double)u0);
      const int64_t p = std::lower_bound(ap, ap + m, theta) - ap;
      const int64_t after = p % m, before = (p + m - 1) % m;
      const double fwd_gap = after == p ? ap[after] - theta : ap[after] + two_pi - theta;
      const double back_gap = before == p - 1 ? theta - ap[before] : theta - (ap[before] - two_pi);
      const double floor = std::cos(std::min(fwd_gap, back_gap)) - margin;
      if (floor <= -1 + 1e-9) {
        op[i] = -1;
        continue;
      }
      const double half = std::acos(floor) + 1e-9;
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_i = std::numeric_limits<int64_t>::max();
      auto consider = [&](float score, int64_t idx) {
        if (score > best || (score == best && idx < best_i)) {
          best = score;
          best_i = idx;
        }
      };
      for (int64_t k = 0; k < m; ++k) {  // forward from the first angle >= theta
        const int64_t j = (p + k) % m;
        const double offset = ap[j] + (p + k >= m ? two_pi : 0.0) - theta;
        if (offset > half) break;
        consider(std::fma(u1, c1p[j], u0 * c0p[j]), ip[j]);
      }
      for (int64_t k = 1; k <= m; ++k) {  // backward from the last angle < theta
        const int64_t j = ((p - k) % m + m) % m;
        const double offset = theta - (ap[j] - (p - k < 0 ? two_pi : 0.0));
        if (offset > half) break;
        consider(std::fma(u1, c1p[j], u0 * c0p[j]), ip[j]);
      }
      if (first_zero >= 0) consider(0.0f, first_zero);
      op[i] = best_i;
    }
  });
  return out;
}
