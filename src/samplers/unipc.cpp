// UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
// Diffusion Models"), data prediction, B(h) = e^h − 1 ("bh2"), as diffusers'
// UniPCMultistepScheduler (predict_x0, lower_order_final). In λ = log(α/σ), step s0 → t,
// h = λ_t − λ_s0, hh = −h, with data predictions m0 (at s0) and m_i at earlier points s_i,
// r_i = (λ_si − λ_s0)/h, D_i = (m_i − m0)/r_i:
//   φ-terms: b_k = k! h_φ_{k}(hh) / B(h) with h_φ_1 = e^{hh} − 1, h_φ_{k+1} = h_φ_k/hh − 1/(k+1)!
//   UniP (order p): x_t = (σ_t/σ_s0) x − α_t h_φ_1 m0 − α_t B(h) Σ_i ρ_i D_i,
//                   ρ solves R ρ = b over r_1..r_{p−1} (R_ki = r_i^k), ρ = ½ for p = 2.
//   UniC (order p, at the next point with the new model output m_t): the same update from the
//                   previous sample with one more term, ρ solving the full system over r_1..r_{p−1}, 1
//                   (ρ = ½ for p = 1), and D_t = m_t − m0 weighted by ρ_p.
// The corrector reuses the model output the predictor needs anyway (no extra call); it is not
// applied before the last step, whose first-order update to σ = 0 gives x̂₀ (the loop's).
// SamplerConfig::order (1–3, 0: 3) sets the predictor's order; lower at the start (warm-up)
// and at the end (min(order, steps left)). With the Langevin corrector on: first order, no UniC.
#include <algorithm>
#include <cmath>
#include <deque>
#include <utility>
#include <stdexcept>

#include "samplers/internal.hpp"

namespace ddpm::detail {
namespace {

// Solves the n×n system A ρ = b (n ≤ 3) by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> A, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::abs(A[r][c]) > std::abs(A[p][c])) p = r;
    std::swap(A[c], A[p]);
    std::swap(b[c], b[p]);
    if (A[c][c] == 0.0) throw std::runtime_error("unipc: singular step-ratio system (repeated noise levels)");
    for (size_t r = c + 1; r < n; ++r) {
      const double f = A[r][c] / A[c][c];
      for (size_t k = c; k < n; ++k) A[r][k] -= f * A[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= A[i][k] * x[k];
    x[i] = s / A[i][i];
  }
  return x;
}

// b_k, k = 1..order (bh2), for step h (hh = −h).
std::vector<double> phi_terms(double h, int64_t order) {
  const double hh = -h;
  const double h_phi_1 = std::expm1(hh);
  const double B_h = std::expm1(hh);
  double h_phi_k = h_phi_1 / hh - 1.0;
  double factorial = 1.0;
  std::vector<double> b;
  for (int64_t i = 1; i <= order; ++i) {
    b.push_back(h_phi_k * factorial / B_h);
    factorial *= static_cast<double>(i + 1);
    h_phi_k = h_phi_k / hh - 1.0 / factorial;
  }
  return b;
}

// R_ki = r_i^k, k = 0..n−1.
std::vector<std::vector<double>> ratio_matrix(const std::vector<double>& r) {
  std::vector<std::vector<double>> R(r.size(), std::vector<double>(r.size()));
  for (size_t k = 0; k < r.size(); ++k)
    for (size_t i = 0; i < r.size(); ++i) R[k][i] = std::pow(r[i], static_cast<double>(k));
  return R;
}

struct Point {
  at::Tensor m;   // data prediction
  double lambda;  // λ where it was made
};

// r_i = (λ_si − λ_s0)/h and D_i = (m_i − m0)/r_i for the order − 1 points before the newest.
std::pair<std::vector<double>, std::vector<at::Tensor>> ratios(const std::deque<Point>& history, int64_t order,
                                                               double h) {
  const Point& p0 = history.front();
  std::vector<double> r;
  std::vector<at::Tensor> D;
  for (int64_t i = 1; i < order; ++i) {
    const Point& pi = history[static_cast<size_t>(i)];
    r.push_back((pi.lambda - p0.lambda) / h);
    D.push_back((pi.m - p0.m) / r.back());
  }
  return {r, D};
}

}  // namespace

Stepper unipc_stepper(SamplerRun& run) {
  struct State {
    std::deque<Point> history;  // newest first: the outputs the next predictor step uses
    at::Tensor last_sample;     // x at the previous point (before its predictor step)
    double last_ab = 1.0;       // ᾱ there
    int64_t last_order = 0;     // the previous predictor step's order (0: none yet)
  };
  auto state = std::make_shared<State>();
  const int64_t max_order = run.config().order > 0 ? std::min<int64_t>(run.config().order, 3) : 3;
  Stepper stepper;
  stepper.step = [&run, state, max_order](int64_t k, double s, double t, const SamplerRun::Estimate& e,
                                             const at::Tensor& x_in) {
    State& st = *state;
    const bool plain = run.config().corrector;  // Langevin moves in between: first order, no UniC
    const double ab_s = run.alpha_bar(s), ab_t = run.alpha_bar(t);
    const double lambda_s = half_logsnr(ab_s);
    at::Tensor x = x_in;
    // UniC: correct x at s with its own model output, from the previous sample.
    if (!plain && st.last_order > 0) {
      const Point& p0 = st.history.front();  // m0 of the corrector: the previous point
      const double h = lambda_s - p0.lambda;
      const int64_t order = st.last_order;
      auto [r, D] = ratios(st.history, order, h);
      r.push_back(1.0);
      const std::vector<double> b = phi_terms(h, order);
      const std::vector<double> rho = order == 1 ? std::vector<double>{0.5} : solve(ratio_matrix(r), b);
      const double alpha = std::sqrt(ab_s), B_h = std::expm1(-h);
      at::Tensor res = (e.x0 - p0.m) * rho.back();
      for (size_t i = 0; i < D.size(); ++i) res = res + D[i] * rho[i];
      x = st.last_sample * std::sqrt((1.0 - ab_s) / (1.0 - st.last_ab)) - p0.m * (alpha * std::expm1(-h)) -
          res * (alpha * B_h);
    }
    if (plain) st.history.clear();
    st.history.push_front({e.x0, lambda_s});
    while (static_cast<int64_t>(st.history.size()) > max_order) st.history.pop_back();
    // UniP from s to t; lower_order_final: at most the k + 1 steps left (this one to the last).
    int64_t order = std::min<int64_t>(max_order, k + 1);
    order = std::min<int64_t>(order, static_cast<int64_t>(st.history.size()));
    const double h = half_logsnr(ab_t) - lambda_s;
    const double alpha_t = std::sqrt(ab_t), B_h = std::expm1(-h);
    const Point& p0 = st.history.front();
    at::Tensor out = x * std::sqrt((1.0 - ab_t) / (1.0 - ab_s)) - p0.m * (alpha_t * std::expm1(-h));
    if (order > 1) {
      auto [r, D] = ratios(st.history, order, h);
      std::vector<double> rho;
      if (order == 2) {
        rho = {0.5};
      } else {
        r.push_back(1.0);
        const std::vector<double> b = phi_terms(h, order);
        auto R = ratio_matrix(r);
        // R[:-1, :-1] ρ = b[:-1]
        R.pop_back();
        for (auto& row : R) row.pop_back();
        rho = solve(R, {b.begin(), b.end() - 1});
      }
      at::Tensor res = D[0] * rho[0];
      for (size_t i = 1; i < D.size(); ++i) res = res + D[i] * rho[i];
      out = out - res * (alpha_t * B_h);
    }
    st.last_sample = x;
    st.last_ab = ab_s;
    st.last_order = plain ? 0 : order;
    return out;
  };
  return stepper;
}

}  // namespace ddpm::detail
