// Fused nearest-code search for CPU: dot products and a running maximum in
// registers, never a score in memory (see qbench/_fused_kernel.py).
//
// Register tiling: one vector of W codes (AVX-512: 16, else 8) is loaded once
// per input dimension and multiplied into RB = 8 rows' accumulators, so each
// load feeds 8 fused multiply-adds and 8 independent fma chains hide the fma
// latency (with 4, half the fma throughput sat idle; AVX2's 16 registers spill
// some of the 8 rows' state to L1 and still gain: benchmarks/README.md).
// Cache tiling: a thread works through `row_chunk` rows against `code_chunk`
// codes at a time, a slice of the
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
constexpr int RB = 8;

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

// Every one of the k values is finite and at most `limit` in magnitude.
inline bool within(const float* p, int64_t k, double limit) {
  for (int64_t j = 0; j < k; ++j)
    if (!(std::fabs(p[j]) <= limit)) return false;  // also false for NaN
  return true;
}

// Runs `search(begin, end)` (which writes -1 for a query it hands back) on the first 64 queries
// alone: where more than an eighth of them are handed back (queries far from the codes, codes on a
// ring with an empty inside), every query is, since the scan would only add work to the brute
// force; else on the rest, in parallel.
template <typename Search>
void probe_then_search(int64_t n, int64_t* op, const Search& search) {
  const int64_t probe = std::min<int64_t>(n, 64);
  search(0, probe);
  int64_t missed = 0;
  for (int64_t i = 0; i < probe; ++i) missed += op[i] < 0;
  if (8 * missed > probe) {
    std::fill(op, op + n, -1);
    return;
  }
  at::parallel_for(probe, n, 256, search);
}

// Exact Euclidean search at d = 1 and 2 (see qbench/_grid_lookup.py): codes
// are counted into a grid of cells over their bounding box (about v / 4 cells,
// a counting sort); each query scans its own cell, then ring after ring of
// cells around it, and stops once every unscanned code is provably worse.  A
// code at distance R >= t from the query (t: the gap to the next ring) scores
// below the best so far when R^2 (1 - 2k) - 6 k |x| R > D^2 + 2 e_best + 4 k |x|^2
// (D: the best code's distance, e(c) <= k (|c|^2 + |x| |c|) the kernel's
// rounding, `kappa` = k), and the left side grows with R.  Scores are the
// brute-force kernel's own, fma chain from the bias, so ties and near-ties
// resolve as there (first index of the maximum).  A query whose search visits
// more than `cap` cells and codes, or that is not finite or exceeds `limit`,
// gets -1 (the caller runs the brute force); so does every query when more
// than an eighth of the first 64 do; codes that are not finite or exceed `limit` return an
// empty tensor (the caller runs the brute force for every query).
constexpr int64_t CELL_CODES = 4;  // codes per cell on average

torch::Tensor grid(torch::Tensor x, torch::Tensor codes, torch::Tensor bias, double kappa, int64_t cap,
                   double limit) {
  const int64_t n = x.size(0), d = x.size(1), v = codes.size(0);
  const int64_t g = std::min<int64_t>(d, 2);  // gridded axes
  const float* xp = x.data_ptr<float>();
  const float* cp = codes.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  if (!within(cp, v * d, limit) || !within(bp, v, limit)) return torch::empty({0}, torch::kLong);
  double lo[2] = {0, 0}, range[2] = {0, 0}, w[2] = {1, 1};
  int64_t cells[2] = {1, 1};
  for (int64_t a = 0; a < g; ++a) {
    double l = cp[a], h = cp[a];
    for (int64_t c = 1; c < v; ++c) {
      l = std::min(l, (double)cp[c * d + a]);
      h = std::max(h, (double)cp[c * d + a]);
    }
    lo[a] = l;
    range[a] = h - l;
  }
  std::vector<int64_t> start, order(v);
  std::vector<int32_t> cell(v);
  int64_t nc = 1;
  double inv_w[2] = {1, 1};
  auto cell_of = [&](int64_t a, double value) {  // the slack below covers the rounding of inv_w
    const double b = (value - lo[a]) * inv_w[a];
    return b <= 0 ? int64_t(0) : (int64_t)std::min<double>(cells[a] - 1, b);
  };
  // counts the codes into about `total` cells over the bounding box; returns the cells in use
  auto build = [&](int64_t total) {
    cells[0] = cells[1] = 1;
    if (g == 1 || !(range[1] > 0)) {
      cells[0] = range[0] > 0 ? total : 1;
    } else if (!(range[0] > 0)) {
      cells[1] = total;
    } else {
      cells[0] = std::clamp<int64_t>(std::llround(std::sqrt(total * range[0] / range[1])), 1, total);
      cells[1] = std::max<int64_t>(1, total / cells[0]);
    }
    for (int64_t a = 0; a < g; ++a) {
      w[a] = range[a] > 0 ? range[a] / cells[a] : 1.0;
      inv_w[a] = 1.0 / w[a];
    }
    nc = cells[0] * cells[1];
    start.assign(nc + 1, 0);
    for (int64_t c = 0; c < v; ++c) {
      const float* p = cp + c * d;
      cell[c] = (int32_t)(cell_of(0, p[0]) + (g == 2 ? cells[0] * cell_of(1, p[1]) : 0));
      ++start[cell[c] + 1];
    }
    int64_t used = 0;
    for (int64_t b = 0; b < nc; ++b) {
      used += start[b + 1] > 0;
      start[b + 1] += start[b];
    }
    return used;
  };
  const int64_t total = std::max<int64_t>(1, v / CELL_CODES);
  const int64_t used = build(total);
  // Few cells in use (codes on a few values or a curve, e.g. GSQ's +-1 init at d = 1): a grid
  // sized to them, so that a query does not walk through thousands of empty cells.
  if (used * 16 < total) build(std::max<int64_t>(1, 4 * used));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t c = 0; c < v; ++c) order[fill[cell[c]]++] = c;  // ascending index in a cell
  }
  // Duplicated codes (same values, same bias) score alike for every query, so only the first
  // index of each can win: keep that one.  GSQ's spherical init at d = 1 is 2^18 codes of +-1.
  auto same = [&](int64_t a, int64_t b) {
    return bp[a] == bp[b] && std::memcmp(cp + a * d, cp + b * d, d * sizeof(float)) == 0;
  };
  auto dedupe = [&]() {
    int64_t kept = 0;
    std::vector<int64_t> table;
    for (int64_t b = 0; b < nc; ++b) {
      const int64_t s0 = start[b], s1 = start[b + 1];
      start[b] = kept;
      bool uniform = true;  // one value repeated (the +-1 cells above): the first index is the answer
      for (int64_t k = s0 + 1; k < s1 && uniform; ++k) uniform = same(order[k], order[s0]);
      if (uniform && s1 > s0) {
        order[kept++] = order[s0];
        continue;
      }
      if (s1 - s0 <= 8) {  // a few codes: compare each with those kept so far
        const int64_t first = kept;
        for (int64_t k = s0; k < s1; ++k) {
          bool seen = false;
          for (int64_t j = first; j < kept && !seen; ++j) seen = same(order[k], order[j]);
          if (!seen) order[kept++] = order[k];
        }
        continue;
      }
      // many codes: an open-addressing table of the kept ones, keyed by their bits (O(m))
      int64_t size = 16;
      while (size < 2 * (s1 - s0)) size *= 2;
      table.assign(size, -1);
      for (int64_t k = s0; k < s1; ++k) {
        const int64_t c = order[k];
        uint64_t h = 1469598103934665603ull;
        for (int64_t j = 0; j <= d; ++j) {
          uint32_t bits;
          std::memcpy(&bits, j < d ? cp + c * d + j : bp + c, 4);
          h = (h ^ bits) * 1099511628211ull;
        }
        int64_t slot = (int64_t)(h & (size - 1));
        bool seen = false;
        while (table[slot] >= 0 && !(seen = same(c, order[table[slot]]))) slot = (slot + 1) & (size - 1);
        if (!seen) {
          table[slot] = kept;
          order[kept++] = c;
        }
      }
    }
    start[nc] = kept;
    return kept;
  };
  std::vector<float> sorted, sorted_bias;
  double cmax2 = 0;  // the largest |c|^2 of any code: bounds every code's rounding error
  auto gather = [&](int64_t count) {
    sorted.resize(count * d);
    sorted_bias.resize(count);
    for (int64_t k = 0; k < count; ++k) {
      std::memcpy(&sorted[k * d], cp + order[k] * d, d * sizeof(float));
      sorted_bias[k] = bp[order[k]];
      double norm2 = 0;
      for (int64_t j = 0; j < d; ++j) norm2 += (double)sorted[k * d + j] * sorted[k * d + j];
      cmax2 = std::max(cmax2, norm2);
    }
  };
  gather(dedupe());
  const double cmax = std::sqrt(cmax2);
  const double box_hi[2] = {lo[0] + range[0], lo[1] + range[1]};
  // cell edges are computed in double; the slack covers their rounding
  double slack = 0;
  for (int64_t a = 0; a < g; ++a) slack += 1e-12 * (std::fabs(lo[a]) + range[a] + w[a]);
  auto out = torch::empty({n}, torch::kLong);
  int64_t* op = out.data_ptr<int64_t>();
  auto search = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* q = xp + i * d;
      if (!within(q, d, limit)) {
        op[i] = -1;
        continue;
      }
      double xnorm2 = 0;
      for (int64_t k = 0; k < d; ++k) xnorm2 += (double)q[k] * q[k];
      const double xnorm = std::sqrt(xnorm2);
      // rounding of any code's score: at most k (|c|^2 + |x| |c|) with |c| <= cmax
      const double e_any = kappa * (cmax2 + xnorm * cmax) + 1e-37;
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_i = std::numeric_limits<int64_t>::max(), best_k = -1, work = 0;
      double bound = std::numeric_limits<double>::infinity();  // D^2 + 2 e_best + 4 k |x|^2
      double bound_any = std::numeric_limits<double>::infinity();  // D^2 + 2 e_best + 2 e_any
      auto scan = [&](int64_t cx, int64_t cy) {
        const int64_t b = cx + cells[0] * cy, was = best_k;
        for (int64_t k = start[b]; k < start[b + 1]; ++k) {
          const float* c = &sorted[k * d];
          float acc = sorted_bias[k];
          for (int64_t j = 0; j < d; ++j) acc = std::fma(q[j], c[j], acc);
          if (acc > best || (acc == best && order[k] < best_i)) {
            best = acc;
            best_i = order[k];
            best_k = k;
          }
        }
        work += 1 + start[b + 1] - start[b];
        if (best_k != was) {
          const float* c = &sorted[best_k * d];
          double dist2 = 0, cnorm2 = 0;
          for (int64_t j = 0; j < d; ++j) {
            dist2 += ((double)q[j] - c[j]) * ((double)q[j] - c[j]);
            cnorm2 += (double)c[j] * c[j];
          }
          const double e_best = kappa * (cnorm2 + xnorm * std::sqrt(cnorm2)) + 1e-37;
          bound = dist2 + 2 * e_best + 4 * kappa * xnorm2 + 1e-37;
          bound_any = dist2 + 2 * e_best + 2 * e_any + 1e-37;
        }
      };
      const int64_t hx = cell_of(0, q[0]), hy = g == 2 ? cell_of(1, q[1]) : 0;
      const int64_t home[2] = {hx, hy};
      double out2[2] = {0, 0};  // squared distance from the query to the codes' range, per axis
      for (int64_t a = 0; a < g; ++a) {
        const double o = std::max({0.0, lo[a] - q[a], q[a] - box_hi[a]});
        out2[a] = o * o;
      }
      scan(hx, hy);
      for (int64_t k = 1; work <= cap; ++k) {
        // the nearest point of a cell outside rings 0 .. k-1: past an open side on one axis,
        // and at least the distance to the codes' range on the other
        double gap[2] = {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
        for (int64_t a = 0; a < g; ++a) {
          if (home[a] - k >= 0) gap[a] = std::min(gap[a], q[a] - (lo[a] + (home[a] - k + 1) * w[a]));
          if (home[a] + k < cells[a]) gap[a] = std::min(gap[a], (lo[a] + (home[a] + k) * w[a]) - q[a]);
          gap[a] = std::max(0.0, gap[a] - slack);
        }
        double t2 = gap[0] * gap[0] + (g == 2 ? out2[1] : 0.0);
        if (g == 2) t2 = std::min(t2, gap[1] * gap[1] + out2[0]);
        if (t2 == std::numeric_limits<double>::infinity()) break;  // every cell scanned
        const double t = std::sqrt(t2);
        // a code at distance R >= t is worse when R^2 - D^2 > 2 (e_best + e(c)); two bounds on e(c)
        if (t2 > bound_any) break;
        if (t2 * (1 - 2 * kappa) - 6 * kappa * xnorm * t > bound) break;
        const int64_t x0 = std::max<int64_t>(0, hx - k), x1 = std::min<int64_t>(cells[0] - 1, hx + k);
        const int64_t y0 = std::max<int64_t>(0, hy - k), y1 = std::min<int64_t>(cells[1] - 1, hy + k);
        for (int64_t cy = y0; cy <= y1; ++cy) {
          if (cy == hy - k || cy == hy + k) {
            for (int64_t cx = x0; cx <= x1; ++cx) scan(cx, cy);
          } else {
            if (hx - k >= 0) scan(hx - k, cy);
            if (hx + k < cells[0]) scan(hx + k, cy);
          }
        }
      }
      op[i] = work > cap ? -1 : best_i;
    }
  };
  probe_then_search(n, op, search);
  return out;
}

// Exact Euclidean search at d = 2 when most codes lie on one circle (GSQ's spherical init, and
// its codebooks later: the codes never picked keep their common norm, AdamW's weight decay scales
// them alike), where a grid's empty inside would send every query in it to the brute force.
// The codes within RING_BAND (relative) of the median norm are the ring; the others, at most
// v / 8 of them, are searched for every query with the brute-force tile (the same scores).  Ring
// codes are counted into about v / 4 buckets of angle; each query scans its own bucket, then the
// next ones on both sides, and stops once the angular gap a to the next bucket proves every ring
// code beyond it worse: such a code scores at most b_max + |x| r_max cos a + E (cos a >= 0; E:
// any code's rounding, at most k (|b|_max + |x| r_max)), so cos a < C = (best - E - b_max) /
// (|x| r_max) with C > 0 ends the scan.  Scores are the brute-force kernel's fma chain, ties go
// to the first index.  Codebooks that are no ring return an empty tensor; queries at the origin,
// not finite, or past `cap` buckets and codes get -1, and all of them do when more than an
// eighth of the first 64 do (the caller runs the brute force for them).
constexpr double RING_BAND = 1e-5;

torch::Tensor ring(torch::Tensor x, torch::Tensor codes, torch::Tensor bias, double kappa, int64_t cap,
                   double limit) {
  const int64_t n = x.size(0), v = codes.size(0);
  const float* xp = x.data_ptr<float>();
  const float* cp = codes.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  const double pi = M_PI;
  std::vector<double> norm(v);
  for (int64_t c = 0; c < v; ++c) {
    const double c0 = cp[2 * c], c1 = cp[2 * c + 1];
    if (!within(cp + 2 * c, 2, limit) || !within(bp + c, 1, limit)) return torch::empty({0}, torch::kLong);
    norm[c] = std::sqrt(c0 * c0 + c1 * c1);
  }
  std::vector<double> sorted_norm(norm);
  std::nth_element(sorted_norm.begin(), sorted_norm.begin() + v / 2, sorted_norm.end());
  const double median = sorted_norm[v / 2];
  if (!(median > 0)) return torch::empty({0}, torch::kLong);
  std::vector<int64_t> on_ring, off_ring;
  for (int64_t c = 0; c < v; ++c) (std::fabs(norm[c] - median) <= RING_BAND * median ? on_ring : off_ring).push_back(c);
  if ((int64_t)off_ring.size() * 8 > v) return torch::empty({0}, torch::kLong);
  const int64_t m = on_ring.size();
  double r_max = 0, b_max = -std::numeric_limits<double>::infinity(), b_abs = 0;
  for (int64_t c : on_ring) {
    r_max = std::max(r_max, norm[c]);
    b_max = std::max(b_max, (double)bp[c]);
    b_abs = std::max(b_abs, std::fabs((double)bp[c]));
  }
  const int64_t nb = std::max<int64_t>(1, m / CELL_CODES);
  const double bw = 2 * pi / nb;
  auto bucket_of = [&](double a) {
    const double b = (a + pi) / bw;
    return b <= 0 ? int64_t(0) : (int64_t)std::min<double>(nb - 1, b);
  };
  std::vector<int64_t> start(nb + 1, 0), order(m);
  std::vector<int32_t> bucket(m);
  for (int64_t k = 0; k < m; ++k) {
    const int64_t c = on_ring[k];
    bucket[k] = (int32_t)bucket_of(std::atan2((double)cp[2 * c + 1], (double)cp[2 * c]));
    ++start[bucket[k] + 1];
  }
  for (int64_t b = 0; b < nb; ++b) start[b + 1] += start[b];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < m; ++k) order[fill[bucket[k]]++] = on_ring[k];  // ascending index in a bucket
  }
  std::vector<float> s0(m), s1(m), sb(m);
  for (int64_t k = 0; k < m; ++k) {
    s0[k] = cp[2 * order[k]];
    s1[k] = cp[2 * order[k] + 1];
    sb[k] = bp[order[k]];
  }
  // the codes off the ring: the brute-force tile, for every query (best score and index)
  const int64_t off = off_ring.size(), opad = std::max<int64_t>(W, (off + W - 1) / W * W);
  std::vector<float> off_t(2 * opad, 0.f), off_b(opad, -std::numeric_limits<float>::infinity());
  for (int64_t k = 0; k < off; ++k) {
    off_t[k] = cp[2 * off_ring[k]];
    off_t[opad + k] = cp[2 * off_ring[k] + 1];
    off_b[k] = bp[off_ring[k]];
  }
  const double slack = 1e-9;  // radians: the rounding of atan2 and of the bucket edges
  auto out = torch::empty({n}, torch::kLong);
  int64_t* op = out.data_ptr<int64_t>();
  auto search = [&](int64_t begin, int64_t end) {
    std::vector<float> off_v(end - begin, -std::numeric_limits<float>::infinity()), off_i(end - begin, -1.f);
    if (off > 0) tile_rows<2>(xp + 2 * begin, 2, end - begin, off_t.data(), opad, off_b.data(), 0, opad,
                              off_v.data(), off_i.data());
    for (int64_t i = begin; i < end; ++i) {
      const float q0 = xp[2 * i], q1 = xp[2 * i + 1];
      const double rho = std::sqrt((double)q0 * q0 + (double)q1 * q1);
      if (!within(xp + 2 * i, 2, limit) || rho == 0) {
        op[i] = -1;
        continue;
      }
      const double theta = std::atan2((double)q1, (double)q0);
      const double e_any = kappa * (b_abs + rho * r_max) + 1e-37;
      float best = off_v[i - begin];
      int64_t best_i = off_i[i - begin] >= 0 ? off_ring[(int64_t)off_i[i - begin]] : std::numeric_limits<int64_t>::max();
      int64_t work = 0;
      auto scan = [&](int64_t b) {
        for (int64_t k = start[b]; k < start[b + 1]; ++k) {
          const float acc = std::fma(q1, s1[k], std::fma(q0, s0[k], sb[k]));
          if (acc > best || (acc == best && order[k] < best_i)) {
            best = acc;
            best_i = order[k];
          }
        }
        work += 1 + start[b + 1] - start[b];
      };
      const int64_t home = bucket_of(theta);
      scan(home);
      bool done = false;
      for (int64_t k = 1; 2 * k - 1 < nb && work <= cap; ++k) {
        const double forward = -pi + (home + k) * bw - theta, backward = theta - (-pi + (home - k + 1) * bw);
        const double gap = std::max(0.0, std::min(forward, backward) - slack);
        const double limit_cos = ((double)best - e_any - b_max) / (rho * r_max);
        if (limit_cos > 0 && std::cos(gap) < limit_cos) {
          done = true;
          break;
        }
        const int64_t ahead = ((home + k) % nb + nb) % nb, behind = ((home - k) % nb + nb) % nb;
        scan(ahead);
        if (behind != ahead) scan(behind);
      }
      if (!done && work <= cap) done = true;  // every bucket scanned
      op[i] = done && work <= cap ? best_i : -1;
    }
  };
  probe_then_search(n, op, search);
  return out;
}
