// CartPole dynamics, written once for the CPU loops and the CUDA kernels.
//
// Reference: Gymnasium CartPole-v1 (gymnasium/envs/classic_control/cartpole.py), itself after
// Barto, Sutton and Anderson (1983). The evaluation order below is Gymnasium's, operation for
// operation, so that float64 mode reproduces its states to the last bit or two; the build turns
// off FMA contraction so the CPU and GPU round every operation the same way.
#pragma once

#include <cstdint>
#include <string>

#include "batchpole/core/common.hpp"
#include "batchpole/core/portable_math.hpp"
#include "batchpole/core/random.hpp"

namespace batchpole {

enum class Integrator : uint8_t { kEuler, kSemiImplicit };

// kV1: 1 on every step, the terminating one included (CartPole-v1).
// kNotebook: 1 per step but 0 on the terminating step (the notebook's CartPoleSimple).
// kSuttonBarto: 0 per step, -1 on failure (Gymnasium's sutton_barto_reward=True).
enum class RewardMode : uint8_t { kV1, kNotebook, kSuttonBarto };

enum class Precision : uint8_t { kF32, kF64 };

// What a vectorised environment does when an episode ends, as Gymnasium 1.x defines it.
// kSameStep: the step that ends an episode already returns the next episode's first
// observation (the ended one's last goes to final_obs); the trainers use this.
// kNextStep: the step that ends an episode returns its last observation; the env's next step
// begins the next episode instead of stepping (reward 0, both flags clear, the action ignored).
// kDisabled: episodes never restart by themselves; the caller restarts them.
enum class AutoresetMode : uint8_t { kSameStep, kNextStep, kDisabled };

struct CartPoleParams {
  double gravity = 9.8;
  double masscart = 1.0;
  double masspole = 0.1;
  double length = 0.5;  // half the pole's length
  double force_mag = 10.0;
  double tau = 0.02;  // seconds between state updates
  double x_threshold = 2.4;
  double theta_threshold = 12.0 * 2.0 * 3.141592653589793 / 360.0;  // degrees_to_radians(12)
  double reset_bound = 0.05;  // each state variable starts uniform in [-b, b)
  Integrator integrator = Integrator::kEuler;
  RewardMode reward_mode = RewardMode::kV1;
  int32_t max_episode_steps = 500;  // truncation; 0 means never

  // Throws batchpole::Error (invalid argument) naming the bad field.
  void validate() const;
};

// Degrees to radians as Gymnasium computes its threshold (deg * 2 * pi / 360), so that 12 gives
// 0.20943951023931953 to the last bit.
inline double degrees_to_radians(double degrees) {
  return degrees * 2.0 * 3.141592653589793 / 360.0;
}

std::string to_string(Integrator v);
std::string to_string(RewardMode v);
std::string to_string(Precision v);
std::string to_string(AutoresetMode v);  // "same_step", "next_step", "disabled"
Integrator parse_integrator(const std::string& s);
RewardMode parse_reward_mode(const std::string& s);
Precision parse_precision(const std::string& s);
AutoresetMode parse_autoreset_mode(const std::string& s);  // the names to_string gives

// The constants in the precision the physics runs in, derived as Gymnasium derives them.
template <class Real>
struct Physics {
  Real gravity, masspole, total_mass, length, polemass_length, force_mag, tau;
  Real inv_total_mass;  // float32 multiplies by it instead of dividing (see the step)
  Real x_threshold, theta_threshold;
  Integrator integrator;

  static Physics from(const CartPoleParams& p) {
    return {static_cast<Real>(p.gravity),
            static_cast<Real>(p.masspole),
            static_cast<Real>(p.masspole + p.masscart),
            static_cast<Real>(p.length),
            static_cast<Real>(p.masspole * p.length),
            static_cast<Real>(p.force_mag),
            static_cast<Real>(p.tau),
            static_cast<Real>(1.0 / (p.masspole + p.masscart)),
            static_cast<Real>(p.x_threshold),
            static_cast<Real>(p.theta_threshold),
            p.integrator};
  }
};

template <class Real>
struct CartState {
  Real x, x_dot, theta, theta_dot;
};

// One physics step in place under `force`; returns whether the new state is out of bounds
// (terminated). kSmallAngle: the caller knows |theta| <= kSmallAngle, so sin and cos skip the
// range reduction (same bits; see portable_sincos_small).
template <class Real, bool kSmallAngle = false>
BP_HD bool cartpole_physics_step_force(const Physics<Real>& k, Real force, CartState<Real>& s) {
  Real sintheta;
  Real costheta;
  if constexpr (kSmallAngle) {
    portable_sincos_small(s.theta, &sintheta, &costheta);
  } else {
    portable_sincos(s.theta, &sintheta, &costheta);
  }
  Real temp;
  Real thetaacc;
  Real xacc;
  if constexpr (sizeof(Real) == 8) {
    // Gymnasium's evaluation order, operation for operation: float64 matches it to the bit.
    temp = (force + k.polemass_length * (s.theta_dot * s.theta_dot) * sintheta) / k.total_mass;
    thetaacc =
        (k.gravity * sintheta - costheta * temp) /
        (k.length * (Real(4.0) / Real(3.0) - k.masspole * (costheta * costheta) / k.total_mass));
    xacc = temp - k.polemass_length * thetaacc * costheta / k.total_mass;
  } else {
    // float32, the fast mode: the three divisions by the total mass become multiplications
    // (division is the slowest vector instruction here); within 1e-6 of the float64 result.
    temp = (force + k.polemass_length * (s.theta_dot * s.theta_dot) * sintheta) * k.inv_total_mass;
    thetaacc = (k.gravity * sintheta - costheta * temp) /
               (k.length *
                (Real(4.0) / Real(3.0) - k.masspole * (costheta * costheta) * k.inv_total_mass));
    xacc = temp - k.polemass_length * thetaacc * costheta * k.inv_total_mass;
  }
  // Explicit Euler moves the position with the old velocity, semi-implicit Euler with the new
  // one; written as blends (same operations either way) so that the CPU loop vectorises.
  const bool euler = k.integrator == Integrator::kEuler;
  const Real x_dot = s.x_dot + k.tau * xacc;
  const Real theta_dot = s.theta_dot + k.tau * thetaacc;
  s.x = s.x + k.tau * blend(euler, s.x_dot, x_dot);
  s.theta = s.theta + k.tau * blend(euler, s.theta_dot, theta_dot);
  s.x_dot = x_dot;
  s.theta_dot = theta_dot;
  // Strict comparisons on the full-precision state, as Gymnasium does.
  // Integer ORs rather than bool arithmetic, which GCC's vectoriser refuses.
  const int out = static_cast<int>(s.x < -k.x_threshold) | static_cast<int>(s.x > k.x_threshold) |
                  static_cast<int>(s.theta < -k.theta_threshold) |
                  static_cast<int>(s.theta > k.theta_threshold);
  return out != 0;
}

// The discrete action's force: +force_mag for action 1 (`push_right`), -force_mag otherwise.
template <class Real>
BP_HD Real cartpole_discrete_force(const Physics<Real>& k, bool push_right) {
  return blend(push_right, k.force_mag, -k.force_mag);
}

// Continuous CartPole (the common variant, as in Gymnasium's continuous mountain car): the
// action a is a force in units of force_mag, clipped to [-1, 1]; force = clip(a) * force_mag.
// a = +-1 gives exactly the discrete forces. A NaN action pushes with force 0 (both devices; the
// GPU cannot throw, and the trainers stop on a non-finite loss anyway).
template <class Real>
BP_HD Real cartpole_continuous_force(const Physics<Real>& k, float action) {
  const float lo = action < -1.0f ? -1.0f : action;
  const float clipped = lo > 1.0f ? 1.0f : lo;
  return static_cast<Real>(clipped == clipped ? clipped : 0.0f) * k.force_mag;
}

// One step of the discrete CartPole: `push_right` is action == 1.
template <class Real, bool kSmallAngle = false>
BP_HD bool cartpole_physics_step(const Physics<Real>& k, bool push_right, CartState<Real>& s) {
  return cartpole_physics_step_force<Real, kSmallAngle>(k, cartpole_discrete_force(k, push_right),
                                                        s);
}

BP_HD float cartpole_reward(RewardMode mode, bool terminated) {
  // base + on_terminal * terminated: exact in float, and arithmetic rather than selects on the
  // per-env flag, so that the CPU loop vectorises.
  const float base = mode == RewardMode::kSuttonBarto ? 0.0F : 1.0F;
  const float on_terminal = mode == RewardMode::kV1 ? 0.0F : -1.0F;
  return base + on_terminal * static_cast<float>(static_cast<int>(terminated));
}

// The start state of episode `episode` of env `env`: each variable uniform in [-b, b) from 32
// random bits (one Philox draw for the four), computed in double and rounded to Real so that
// both precisions start from the same point.
template <class Real>
BP_HD CartState<Real> cartpole_reset_state(uint64_t seed, uint32_t env, uint64_t episode,
                                           double bound) {
  const auto r = philox_draw(seed, Stream::kReset, env, episode);
  const double width = 2.0 * bound;
  return {static_cast<Real>(-bound + width * uniform_double32(r[0])),
          static_cast<Real>(-bound + width * uniform_double32(r[1])),
          static_cast<Real>(-bound + width * uniform_double32(r[2])),
          static_cast<Real>(-bound + width * uniform_double32(r[3]))};
}

}  // namespace batchpole
