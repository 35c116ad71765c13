// sin/cos built from + - * only, identical on host and device.
//
// libm differs between glibc and CUDA in the last bits, and CUDA's sinf contains FMAs even with
// -fmad=false, so the physics cannot call either and stay bit-identical across devices. These
// are the classic fdlibm (double) and Cephes (float) kernels: Cody-Waite reduction by pi/2 and
// minimax polynomials on [-pi/4, pi/4]. Both stay within 1-2 ulp of the true value for the
// arguments CartPole produces (|theta| well under 1e5). Quadrant choice is written as selects so
// that the CPU loops vectorise.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "batchpole/core/common.hpp"

namespace batchpole {

template <class To, class From>
BP_HD To bit_cast_hd(const From& from) {
  static_assert(sizeof(To) == sizeof(From));
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}

// cond ? a : b as a bit-mask blend. GCC will not if-convert some selects whose condition comes
// from a parameter struct (the loop then stays scalar); this form always vectorises.
template <class Real>
BP_HD Real blend(bool cond, Real a, Real b) {
  using Bits = std::conditional_t<sizeof(Real) == 4, uint32_t, uint64_t>;
  const Bits mask = Bits{0} - static_cast<Bits>(cond);
  return bit_cast_hd<Real>((bit_cast_hd<Bits>(a) & mask) | (bit_cast_hd<Bits>(b) & ~mask));
}

// The largest |x| for which portable_sincos_small gives portable_sincos's result: below pi/4
// the reduction rounds x * 2/pi to k = 0 and leaves r = x exactly (x - 0 * c == x), so only the
// polynomials remain. Slightly under pi/4 so that rounding of x * 2/pi cannot reach 0.5.
inline constexpr double kSmallAngle = 0.78;

// Cephes's minimax polynomials for sin and cos on [-pi/4, pi/4].
BP_HD void sincos_kernel(float r, float* sin_out, float* cos_out) {
  const float z = r * r;
  *sin_out = r + r * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  *cos_out =
      1.0f - 0.5f * z +
      z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
}

BP_HD void portable_sincos(float x, float* sin_out, float* cos_out) {
  constexpr float kTwoOverPi = 0.636619772367581343f;
  // pi/2 split so that k * kPio2A and k * kPio2B are exact for the k that occur.
  constexpr float kPio2A = 1.5703125f;
  constexpr float kPio2B = 4.837512969970703125e-4f;
  constexpr float kPio2C = 7.54978995489188216e-8f;
  // Round to nearest by the 1.5 * 2^23 trick: no libm call, so the loop vectorises and the GPU
  // rounds identically. Exact for |x| < 2^21, far beyond any CartPole angle.
  constexpr float kRound = 12582912.0f;
  const float shifted = x * kTwoOverPi + kRound;
  const float kf = shifted - kRound;
  // The quadrant k mod 4 sits in the low mantissa bits of `shifted` (k + 2^22, and 4 | 2^22);
  // reading it there avoids a float-to-int conversion.
  const uint32_t q = bit_cast_hd<uint32_t>(shifted) & 3U;
  const float r = ((x - kf * kPio2A) - kf * kPio2B) - kf * kPio2C;
  float s;
  float c;
  sincos_kernel(r, &s, &c);
  const float sq = blend((q & 1U) != 0U, c, s);
  const float cq = blend((q & 1U) != 0U, s, c);
  *sin_out = blend((q & 2U) != 0U, -sq, sq);         // quadrants 2 and 3
  *cos_out = blend(((q + 1U) & 2U) != 0U, -cq, cq);  // quadrants 1 and 2
}

// fdlibm's __kernel_sin(y0, y1, 1) and __kernel_cos(y0, y1) for y0 + y1 in [-pi/4, pi/4].
BP_HD void sincos_kernel(double y0, double y1, double* sin_out, double* cos_out) {
  constexpr double kS1 = -1.66666666666666324348e-01;
  constexpr double kS2 = 8.33333333332248946124e-03;
  constexpr double kS3 = -1.98412698298579493134e-04;
  constexpr double kS4 = 2.75573137070700676789e-06;
  constexpr double kS5 = -2.50507602534068634195e-08;
  constexpr double kS6 = 1.58969099521155010221e-10;
  constexpr double kC1 = 4.16666666666666019037e-02;
  constexpr double kC2 = -1.38888888888741095749e-03;
  constexpr double kC3 = 2.48015872894767294178e-05;
  constexpr double kC4 = -2.75573143513906633035e-07;
  constexpr double kC5 = 2.08757232129817482790e-09;
  constexpr double kC6 = -1.13596475577881948265e-11;
  const double z = y0 * y0;
  const double v = z * y0;
  const double rs = kS2 + z * (kS3 + z * (kS4 + z * (kS5 + z * kS6)));
  *sin_out = y0 - ((z * (0.5 * y1 - v * rs) - y1) - v * kS1);
  // For |y0| >= 0.3 subtract qx first to keep the leading terms exact.
  const double rc = z * (kC1 + z * (kC2 + z * (kC3 + z * (kC4 + z * (kC5 + z * kC6)))));
  const double ay = std::fabs(y0);
  const double quarter =
      bit_cast_hd<double>(bit_cast_hd<uint64_t>(ay * 0.25) & 0xFFFFFFFF00000000ULL);
  const double qx = blend(ay > 0.78125, 0.28125, quarter);
  const double c_small = 1.0 - (0.5 * z - (z * rc - y0 * y1));
  const double c_large = (1.0 - qx) - ((0.5 * z - qx) - (z * rc - y0 * y1));
  *cos_out = blend(ay < 0.3, c_small, c_large);
}

BP_HD void portable_sincos(double x, double* sin_out, double* cos_out) {
  constexpr double kTwoOverPi = 6.36619772367581382433e-01;
  constexpr double kPio2Hi = 1.57079632673412561417e+00;  // first 33 bits of pi/2
  constexpr double kPio2Lo = 6.07710050650619224932e-11;  // pi/2 - kPio2Hi

  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52, as in the float version
  const double shifted = x * kTwoOverPi + kRound;
  const double kd = shifted - kRound;
  // AVX2 has no vector double-to-int64 conversion: read k mod 4 from the mantissa instead.
  const uint64_t q = bit_cast_hd<uint64_t>(shifted) & 3U;
  // Reduced argument as a head y0 and a tail y1 (fdlibm's __ieee754_rem_pio2, medium case).
  const double r = x - kd * kPio2Hi;
  const double w = kd * kPio2Lo;
  const double y0 = r - w;
  const double y1 = (r - y0) - w;

  double s;
  double c;
  sincos_kernel(y0, y1, &s, &c);
  const double sq = blend((q & 1U) != 0U, c, s);
  const double cq = blend((q & 1U) != 0U, s, c);
  *sin_out = blend((q & 2U) != 0U, -sq, sq);         // quadrants 2 and 3
  *cos_out = blend(((q + 1U) & 2U) != 0U, -cq, cq);  // quadrants 1 and 2
}

// portable_sincos without the reduction, for |x| <= kSmallAngle only, where it gives the same
// bits (k = 0; in double the reduction leaves y0 = x and y1 = (x - x) - 0 = 0): the CPU loops
// take it for chunks whose angles are all that small, which CartPole's are while the pole is up.
BP_HD void portable_sincos_small(float x, float* sin_out, float* cos_out) {
  sincos_kernel(x, sin_out, cos_out);
}
BP_HD void portable_sincos_small(double x, double* sin_out, double* cos_out) {
  sincos_kernel(x, 0.0, sin_out, cos_out);
}

}  // namespace batchpole
