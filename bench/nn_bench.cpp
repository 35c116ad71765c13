#include "nn_bench.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

#include "batchpole/core/checked.hpp"
#include "batchpole/core/stats.hpp"
#include "batchpole/device/buffer.hpp"

namespace batchpole {

namespace {

template <class F>
double seconds(Device& device, F f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  device.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Element operations that do nothing, so that a model's pass runs its BLAS calls alone. Fills
// and initialisation still happen (construction only): the workspaces then hold numbers.
class NullNnOps final : public NnOps {
 public:
  explicit NullNnOps(Device& device) : NnOps(device), real_(&device.nn()) {}
  [[nodiscard]] std::string description() const override { return "no element operations"; }

 protected:
  void do_fill(float* x, int64_t n, float value, int64_t agents, int64_t stride) override {
    real_->fill(x, n, value, agents, stride);
  }
  void do_init_uniform(float* x, int64_t n, float bound, uint64_t seed, uint32_t block) override {
    real_->init_uniform(x, n, bound, seed, block);
  }
  void do_bias_activation(float*, const float*, int64_t, int64_t, Activation, int64_t,
                          int64_t) override {}
  void do_activation_backward(float*, const float*, int64_t, Activation) override {}
  void do_sample_actions(const float*, int64_t, int32_t, const SampleKey&, int32_t*, float*, float*,
                         const AgentRows&) override {}
  void do_log_prob_entropy(const float*, int64_t, int32_t, const int32_t*, float*,
                           float*) override {}
  void do_softmax(const float*, int64_t, int32_t, float*) override {}
  void do_policy_loss_grad(const PolicyLossArgs&) override {}
  void do_value_loss_grad(const ValueLossArgs&) override {}
  void do_sample_gaussian(const float*, int64_t, int32_t, const SampleKey&, float*, float*, float*,
                          const AgentRows&) override {}
  void do_gaussian_log_prob_entropy(const float*, int64_t, int32_t, const float*, float*,
                                    float*) override {}
  void do_gaussian_loss_grad(const GaussianLossArgs&) override {}
  void do_epsilon_greedy(const float*, int64_t, int32_t, const SampleKey&, float, int32_t*,
                         const AgentRows&, const float*) override {}
  void do_q_loss_grad(const QLossArgs&) override {}
  void do_count_nonzero(const uint8_t*, int64_t, float*, int64_t, int64_t) override {}
  void do_norms(const float*, int64_t, int64_t, int64_t, float*, int64_t) override {}
  void do_adam_step(float*, const float*, float*, float*, int64_t, const AdamScalars&, const float*,
                    float, const AdamAgents&) override {}

 private:
  NnOps* real_;
};

// Random observations spread like CartPole's, and arbitrary actions, weights and targets: the
// cost does not depend on the values.
struct Inputs {
  Buffer<float> obs, weights, targets, values;
  Buffer<int32_t> actions;
  RolloutView rollout;

  Inputs(Device& d, int64_t n) {
    const auto un = static_cast<std::size_t>(n);
    std::vector<float> h(un * 4);
    for (std::size_t i = 0; i < h.size(); ++i) {
      h[i] = 2.0f * uniform_float(philox_draw(7, Stream::kInit, 0xBE7C4U, i)[0]) - 1.0f;
    }
    obs = Buffer<float>(d, un * 4);
    obs.from_host(h);
    std::vector<float> w(un);
    std::vector<int32_t> a(un);
    for (std::size_t i = 0; i < un; ++i) {
      w[i] = h[4 * i] + 0.5f;
      a[i] = static_cast<int32_t>(i & 1U);
    }
    weights = Buffer<float>(d, un);
    weights.from_host(w);
    targets = Buffer<float>(d, un);
    targets.from_host(w);
    values = Buffer<float>(d, un);
    actions = Buffer<int32_t>(d, un);
    actions.from_host(a);
    rollout.obs = ConstMatrix{obs.data(), n, 4};
    rollout.actions = actions.data();
    rollout.weights = weights.data();
    rollout.value_targets = targets.data();
  }
};

}  // namespace

NnFlops nn_flops_per_sample(const ModelConfig& config) {
  NnFlops f;
  const auto nets = config.networks();
  for (std::size_t i = 0; i < nets.size(); ++i) {
    const MlpConfig& m = nets[i];
    for (int32_t l = 0; l < m.layers(); ++l) {
      const double mac = static_cast<double>(m.sizes[l]) * m.sizes[l + 1];
      f.forward += 2 * mac;
      f.train += 2 * mac + 2 * mac + 2.0 * m.sizes[l + 1];  // forward, weight grad, bias grad
      // Input gradients of every layer except the first of the network that reads the
      // observations.
      const bool reads_obs = l == 0 && (i == 0 || !config.has_trunk());
      if (!reads_obs) f.train += 2 * mac;
    }
  }
  f.train += 2.0 * kStatColumns;  // the statistics gemv
  return f;
}

struct BlasReference::Impl {
  Impl(Device& d, const ModelConfig& c, int64_t batch) : device(d), ops(d), in(d, batch) {
    ModelOptions o;
    o.seed = 1;
    o.ops = &ops;
    model = std::make_unique<PolicyValueModel>(d, c, o);
  }
  Device& device;
  NullNnOps ops;
  Inputs in;
  std::unique_ptr<PolicyValueModel> model;
  uint64_t step = 0;
};

BlasReference::BlasReference(Device& device, const ModelConfig& config, int64_t batch)
    : impl_(std::make_unique<Impl>(device, config, batch)) {}
BlasReference::~BlasReference() = default;

double BlasReference::seconds(bool train) {
  Impl& r = *impl_;
  return batchpole::seconds(r.device, [&] {
    if (train) {
      r.model->accumulate_gradients(r.in.rollout, {0.01f, 0.5f});
    } else {
      r.model->act(r.in.rollout.obs, r.step++, r.in.actions.data(), nullptr, r.in.values.data());
    }
  });
}

std::size_t nn_bench_bytes(const Device& device, int64_t batch) {
  const ModelConfig config = ModelConfig::actor_critic();
  const DevicePlan& plan = device.plan();
  const std::size_t model =
      PolicyValueModel::memory_required(config, std::min(batch, plan.chunk_rows), device.threads(),
                                        plan.shards)
          .total();
  // Inputs (obs, weights, targets, values, actions) twice: the model's and the reference's.
  const auto per_sample = static_cast<std::size_t>(8 * sizeof(float));
  return checked_mul(2, checked_add(model, checked_mul(checked_size(batch), per_sample)));
}

NnBenchResult bench_nn(Device& device, int64_t batch, int repeats) {
  BP_CHECK_ARG(batch >= 1 && batch <= (int64_t{1} << 31),
               "bench_nn: batch must be in [1, 2^31], got " << batch);
  BP_CHECK_ARG(repeats >= 1, "bench_nn: repeats must be at least 1, got " << repeats);
  const std::size_t need = nn_bench_bytes(device, batch);
  BP_REQUIRE(need <= device.available_memory(), kOutOfMemory,
             "a batch of " << batch << " needs about " << bytes_text(need) << " on "
                           << device.description() << ", more than the "
                           << device.available_memory() << " available (a smaller --batch)");
  const ModelConfig config = ModelConfig::actor_critic();
  ModelOptions options;
  options.seed = 1;
  PolicyValueModel model(device, config, options);
  Inputs in(device, batch);
  BlasReference reference(device, config, batch);

  uint64_t step = 0;
  const auto forward = [&] {
    model.act(in.rollout.obs, step++, in.actions.data(), nullptr, in.values.data());
  };
  const auto train = [&] { model.accumulate_gradients(in.rollout, {0.01f, 0.5f}); };
  // Warm-up: page faults, thread start, cuBLAS kernel selection.
  seconds(device, forward);
  seconds(device, train);
  reference.seconds(false);
  reference.seconds(true);
  // Interleaved so that drifting clocks and neighbours bias both sides alike.
  std::vector<double> t_fwd, t_train, t_ref_fwd, t_ref_train;
  for (int r = 0; r < repeats; ++r) {
    t_fwd.push_back(seconds(device, forward));
    t_ref_fwd.push_back(reference.seconds(false));
    t_train.push_back(seconds(device, train));
    t_ref_train.push_back(reference.seconds(true));
  }
  const NnFlops flops = nn_flops_per_sample(config);
  const auto samples = static_cast<double>(batch);
  NnBenchResult res;
  res.device = device.description();
  res.blas = device.blas().description();
  res.batch = batch;
  res.repeats = repeats;
  res.chunk_rows = model.chunk_rows();
  res.model_bytes = model.bytes();
  res.forward_samples_per_s = samples / median(t_fwd);
  res.forward_gflops = res.forward_samples_per_s * flops.forward * 1e-9;
  res.forward_sgemm_gflops = samples * flops.forward / median(t_ref_fwd) * 1e-9;
  res.train_samples_per_s = samples / median(t_train);
  res.train_gflops = res.train_samples_per_s * flops.train * 1e-9;
  res.train_sgemm_gflops = samples * flops.train / median(t_ref_train) * 1e-9;
  return res;
}

}  // namespace batchpole
