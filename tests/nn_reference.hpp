// A float64 reference of the networks, heads and losses, written independently of the library
// (plain loops, std::exp/std::log, no BLAS), for the gradient checks and the device tests.
// Parameter layouts follow the library's (Mlp: per layer the out x in weight, then the bias;
// PolicyValueModel: trunk, policy, value).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "batchpole/nn/model.hpp"

namespace batchpole::ref {

inline double act(Activation a, double x) {
  switch (a) {
    case Activation::kRelu:
      return x > 0 ? x : 0;
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kIdentity:
    default:
      return x;
  }
}

// Derivative from the input x (not from the output, unlike the library: an independent route).
inline double act_grad(Activation a, double x) {
  switch (a) {
    case Activation::kRelu:
      return x > 0 ? 1 : 0;
    case Activation::kTanh: {
      const double t = std::tanh(x);
      return 1 - t * t;
    }
    case Activation::kIdentity:
    default:
      return 1;
  }
}

// Pre-activations of every layer, kept for backward.
struct Tape {
  std::vector<std::vector<double>> pre;   // rows x out_l
  std::vector<std::vector<double>> post;  // rows x out_l
};

inline std::vector<double> mlp_forward(const MlpConfig& c, const double* p,
                                       const std::vector<double>& x, int64_t rows,
                                       Tape* tape = nullptr) {
  std::vector<double> in = x;
  int64_t off = 0;
  for (int32_t l = 0; l < c.layers(); ++l) {
    const int32_t ni = c.sizes[l];
    const int32_t no = c.sizes[l + 1];
    const double* w = p + off;
    const double* b = w + static_cast<int64_t>(ni) * no;
    off += static_cast<int64_t>(ni) * no + no;
    const Activation a = l + 1 == c.layers() ? c.output_activation : c.hidden_activation;
    std::vector<double> pre(static_cast<std::size_t>(rows * no));
    std::vector<double> post(pre.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int32_t o = 0; o < no; ++o) {
        double s = b[o];
        for (int32_t i = 0; i < ni; ++i) s += w[o * ni + i] * in[r * ni + i];
        pre[r * no + o] = s;
        post[r * no + o] = act(a, s);
      }
    }
    if (tape != nullptr) {
      tape->pre.push_back(pre);
      tape->post.push_back(post);
    }
    in = std::move(post);
  }
  return in;
}

// Adds the parameter gradient of sum(d_out . output) to d_params; returns d_x.
inline std::vector<double> mlp_backward(const MlpConfig& c, const double* p,
                                        const std::vector<double>& x, int64_t rows,
                                        const Tape& tape, const std::vector<double>& d_out,
                                        double* d_params) {
  std::vector<int64_t> offs;
  int64_t off = 0;
  for (int32_t l = 0; l < c.layers(); ++l) {
    offs.push_back(off);
    off += static_cast<int64_t>(c.sizes[l]) * c.sizes[l + 1] + c.sizes[l + 1];
  }
  std::vector<double> d = d_out;  // w.r.t. the post-activation of layer l
  for (int32_t l = c.layers() - 1; l >= 0; --l) {
    const int32_t ni = c.sizes[l];
    const int32_t no = c.sizes[l + 1];
    const Activation a = l + 1 == c.layers() ? c.output_activation : c.hidden_activation;
    const std::vector<double>& in = l == 0 ? x : tape.post[l - 1];
    const double* w = p + offs[l];
    double* dw = d_params + offs[l];
    double* db = dw + static_cast<int64_t>(ni) * no;
    std::vector<double> d_in(static_cast<std::size_t>(rows * ni), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int32_t o = 0; o < no; ++o) {
        const double g = d[r * no + o] * act_grad(a, tape.pre[l][r * no + o]);
        db[o] += g;
        for (int32_t i = 0; i < ni; ++i) {
          dw[o * ni + i] += g * in[r * ni + i];
          d_in[r * ni + i] += g * w[o * ni + i];
        }
      }
    }
    d = std::move(d_in);
  }
  return d;
}

inline std::vector<double> log_softmax(const double* z, int32_t n) {
  double mx = z[0];
  for (int32_t j = 1; j < n; ++j) mx = std::max(mx, z[j]);
  double s = 0;
  for (int32_t j = 0; j < n; ++j) s += std::exp(z[j] - mx);
  std::vector<double> out(static_cast<std::size_t>(n));
  for (int32_t j = 0; j < n; ++j) out[j] = z[j] - mx - std::log(s);
  return out;
}

inline double entropy(const double* z, int32_t n) {
  const auto lp = log_softmax(z, n);
  double h = 0;
  for (const double l : lp) h -= std::exp(l) * l;
  return h;
}

struct Rollout {
  int64_t rows = 0;
  std::vector<double> obs;  // rows x obs_dim
  std::vector<int32_t> actions;
  std::vector<double> weights;
  std::vector<double> targets;  // empty: no value loss
  std::vector<uint8_t> mask;    // empty: all valid
  double count = 0;             // <= 0: number of valid samples
};

struct LossParts {
  double weighted_log_prob = 0;  // sum over valid of w log pi
  double entropy = 0;
  double squared_error = 0;
  double valid = 0;
  double divisor = 0;
  double total = 0;  // the loss the model differentiates
};

inline bool valid_row(const Rollout& r, int64_t i) { return r.mask.empty() || r.mask[i] != 0; }

// The model's loss (policy_value.hpp, LossConfig) as a function of the flat parameters, and its
// gradient when `grad` is given (written, parameter_count entries).
inline LossParts model_loss(const ModelConfig& c, const std::vector<double>& params,
                            const Rollout& r, const LossConfig& loss,
                            std::vector<double>* grad = nullptr) {
  const MlpConfig pc = c.policy_config();
  const MlpConfig vc = c.value_config();
  const int64_t trunk_n = c.has_trunk() ? c.trunk_config().parameter_count() : 0;
  const double* p_trunk = params.data();
  const double* p_pol = params.data() + trunk_n;
  const double* p_val = p_pol + pc.parameter_count();
  Tape t_trunk, t_pol, t_val;
  std::vector<double> feat = r.obs;
  if (c.has_trunk()) feat = mlp_forward(c.trunk_config(), p_trunk, r.obs, r.rows, &t_trunk);
  const std::vector<double> z = mlp_forward(pc, p_pol, feat, r.rows, &t_pol);
  const bool with_value = !r.targets.empty();
  std::vector<double> v;
  if (with_value) v = mlp_forward(vc, p_val, feat, r.rows, &t_val);

  LossParts lp;
  for (int64_t i = 0; i < r.rows; ++i) lp.valid += valid_row(r, i) ? 1 : 0;
  lp.divisor = r.count > 0 ? r.count : lp.valid;
  const int32_t na = c.num_actions;
  std::vector<double> dz(z.size(), 0.0);
  std::vector<double> dv(static_cast<std::size_t>(r.rows), 0.0);
  for (int64_t i = 0; i < r.rows; ++i) {
    if (!valid_row(r, i)) continue;
    const double* zi = z.data() + i * na;
    const auto lsm = log_softmax(zi, na);
    const double h = entropy(zi, na);
    lp.weighted_log_prob += r.weights[i] * lsm[r.actions[i]];
    lp.entropy += h;
    for (int32_t j = 0; j < na; ++j) {
      const double pj = std::exp(lsm[j]);
      const double ind = j == r.actions[i] ? 1 : 0;
      dz[i * na + j] =
          -(r.weights[i] * (ind - pj) - loss.entropy_coef * pj * (lsm[j] + h)) / lp.divisor;
    }
    if (with_value) {
      const double e = v[i] - r.targets[i];
      lp.squared_error += e * e;
      dv[i] = 2 * loss.value_coef * e / lp.divisor;
    }
  }
  lp.total = -lp.weighted_log_prob / lp.divisor - loss.entropy_coef * lp.entropy / lp.divisor +
             loss.value_coef * lp.squared_error / lp.divisor;
  if (grad != nullptr) {
    grad->assign(params.size(), 0.0);
    double* g_trunk = grad->data();
    double* g_pol = grad->data() + trunk_n;
    double* g_val = g_pol + pc.parameter_count();
    std::vector<double> d_feat = mlp_backward(pc, p_pol, feat, r.rows, t_pol, dz, g_pol);
    if (with_value) {
      const auto dvf = mlp_backward(vc, p_val, feat, r.rows, t_val, dv, g_val);
      for (std::size_t k = 0; k < d_feat.size(); ++k) d_feat[k] += dvf[k];
    }
    if (c.has_trunk()) {
      (void)mlp_backward(c.trunk_config(), p_trunk, r.obs, r.rows, t_trunk, d_feat, g_trunk);
    }
  }
  return lp;
}

// Central differences of f at x for the coordinates `which` (all when empty).
inline std::vector<double> finite_difference(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
    const std::vector<int64_t>& which, double h = 1e-6) {
  std::vector<double> g(which.size());
  for (std::size_t k = 0; k < which.size(); ++k) {
    const auto i = static_cast<std::size_t>(which[k]);
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[k] = (fp - fm) / (2 * h);
  }
  return g;
}

}  // namespace batchpole::ref
