// CPU twins of the trainer operations: OpenMP loops over the element functions of
// rl_elements.hpp. Reductions sum fixed blocks of kReduceBlock elements and then the blocks in
// order, so results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "batchpole/rl/rl_ops.hpp"
#include "cpu_device.hpp"

namespace batchpole {

namespace {

constexpr int64_t kParallelMin = 16384;

class CpuRlOps final : public RlOps {
 public:
  explicit CpuRlOps(Device& device) : RlOps(device), threads_(device.threads()) {}

 protected:
  void do_returns(const ReturnsArgs& a) override {
    const int64_t n = a.envs * a.agents;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n * a.steps >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) discounted_returns_env(a, i);
  }

  void do_gae(const GaeArgs& a) override {
    const int64_t n = a.envs * a.agents;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n * a.steps >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) gae_env(a, i);
  }

  void do_gather_minibatch(const MinibatchArgs& a) override {
    const int64_t n = a.rows * a.agents;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t j = 0; j < n; ++j) gather_minibatch_row(a, j);
  }

  void do_replay_store(const ReplayStoreArgs& a) override {
    const int64_t n = a.rows * a.agents;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t g = 0; g < n; ++g) replay_store_row(a, g);
  }

  void do_replay_sample(const ReplaySampleArgs& a) override {
    const int64_t n = a.rows * a.agents;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t g = 0; g < n; ++g) replay_sample_row(a, g);
  }

  void do_td_targets(const TdTargetArgs& a) override {
#pragma omp parallel for schedule(static) num_threads(threads_) if (a.rows >= kParallelMin)
    for (int64_t j = 0; j < a.rows; ++j) td_target_row(a, j);
  }

  void do_first_episode_mask(const uint8_t* terminated, const uint8_t* truncated, int64_t steps,
                             int64_t envs, uint8_t* mask, int64_t agents,
                             int64_t stride) override {
    const int64_t n = envs * agents;
    const int64_t agent_stride = agents > 1 ? stride : 0;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n * steps >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      first_episode_mask_env(terminated, truncated, steps, envs, i, mask, agent_stride);
    }
  }

  void do_mark_ended(uint8_t* ended, const uint8_t* terminated, const uint8_t* truncated, int64_t n,
                     int64_t* ended_count, int64_t agents, int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      uint8_t* e = ended + k * n;
      const uint8_t* term = terminated + k * stride;
      const uint8_t* trunc = truncated + k * stride;
      int64_t newly = 0;
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t now = e[i] | term[i] | trunc[i];
        newly += static_cast<int64_t>(now != 0 && e[i] == 0);
        e[i] = now;
      }
      ended_count[k] += newly;
    }
  }

  void do_subtract(const float* a, const float* b, int64_t n, float* out) override {
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
  }

  void do_moments(const float* x, const uint8_t* mask, int64_t n, Moments* out, int64_t agents,
                  int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      const float* xk = x + k * stride;
      const uint8_t* mk = mask != nullptr ? mask + k * stride : nullptr;
      out[k] = reduce_blocks<Moments>(n, [&](int64_t i) { return moments_row(xk, mk, i); });
    }
  }

  void do_normalize(float* x, const uint8_t* mask, int64_t n, const Moments* m, float eps,
                    int64_t agents, int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      const Moments mm = m[k];
      float* xk = x + k * stride;
      const uint8_t* mk = mask != nullptr ? mask + k * stride : nullptr;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        if (mk == nullptr || mk[i] != 0) xk[i] = normalized(xk[i], mm, eps);
      }
    }
  }

  void do_episode_tally(const EpisodeRows& rows, int64_t n, EpisodeTally* out, int64_t agents,
                        int64_t stride) override {
    for (int64_t k = 0; k < agents; ++k) {
      const int64_t at = k * stride;
      out[k] = reduce_blocks<EpisodeTally>(n, [&](int64_t i) { return episode_tally_row(rows, at + i); });
    }
  }

 private:
  template <class T, class Row>
  T reduce_blocks(int64_t n, Row row) {
    const int64_t blocks = (n + kReduceBlock - 1) / kReduceBlock;
    std::vector<T> partial(static_cast<std::size_t>(std::max<int64_t>(blocks, 1)));
#pragma omp parallel for schedule(dynamic) num_threads(threads_) if (n >= kParallelMin)
    for (int64_t b = 0; b < blocks; ++b) {
      T acc;
      const int64_t end = std::min(n, (b + 1) * kReduceBlock);
      for (int64_t k = b * kReduceBlock; k < end; ++k) acc = add(acc, row(k));
      partial[static_cast<std::size_t>(b)] = acc;
    }
    T total;
    for (const T& p : partial) total = add(total, p);
    return total;
  }

  int threads_;
};

}  // namespace

std::unique_ptr<RlOps> make_cpu_rl_ops(Device& device) {
  return std::make_unique<CpuRlOps>(device);
}

}  // namespace batchpole
