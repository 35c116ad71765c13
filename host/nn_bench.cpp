#include "batchpole/nn_bench.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

namespace batchpole {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

template <class F>
double seconds(Backend& backend, F f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  backend.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<MlpConfig> networks(const ModelConfig& c) {
  std::vector<MlpConfig> v;
  if (c.has_trunk()) v.push_back(c.trunk_config());
  v.push_back(c.policy_config());
  v.push_back(c.value_config());
  return v;
}

}  // namespace

NnFlops nn_flops_per_sample(const ModelConfig& config) {
  NnFlops f;
  const auto nets = networks(config);
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

double blas_reference_seconds(Backend& backend, Blas& blas, NnOps& ops, const ModelConfig& config,
                              int64_t batch, int64_t chunk_rows, int32_t shards, bool train) {
  const auto nets = networks(config);
  int32_t widest = 0;
  for (const auto& m : nets) {
    for (const int32_t s : m.sizes) widest = std::max(widest, s);
  }
  const int64_t rows_max = std::min(batch, chunk_rows);
  const auto big = static_cast<std::size_t>(rows_max * std::max(widest, int32_t{kStatColumns}));
  const auto square = static_cast<std::size_t>(widest) * widest + widest;
  // Every worker its own operands, as every worker of the model has its own workspace.
  struct Operands {
    Buffer<float> x, y, w, g, ones;
  };
  std::vector<Operands> per_worker;
  for (int i = 0; i < backend.threads(); ++i) {
    Operands o{Buffer<float>(backend, big), Buffer<float>(backend, big),
               Buffer<float>(backend, square), Buffer<float>(backend, square),
               Buffer<float>(backend, static_cast<std::size_t>(rows_max))};
    ops.fill(o.x.data(), static_cast<int64_t>(big), 0.01f);
    ops.fill(o.y.data(), static_cast<int64_t>(big), 0.01f);
    ops.fill(o.w.data(), static_cast<int64_t>(square), 0.01f);
    ops.fill(o.ones.data(), rows_max, 1.0f);
    per_worker.push_back(std::move(o));
  }
  backend.synchronize();

  const auto chunk_calls = [&](Operands& o, int64_t r) {
    float* x = o.x.data();
    float* y = o.y.data();
    const float* w = o.w.data();
    float* g = o.g.data();
    for (const auto& m : nets) {
      for (int32_t l = 0; l < m.layers(); ++l) {
        blas.gemm(Trans::kNo, Trans::kYes, r, m.sizes[l + 1], m.sizes[l], 1.0f, x, m.sizes[l], w,
                  m.sizes[l], 0.0f, y, m.sizes[l + 1]);
      }
    }
    if (!train) return;
    for (std::size_t i = 0; i < nets.size(); ++i) {
      const MlpConfig& m = nets[i];
      for (int32_t l = m.layers() - 1; l >= 0; --l) {
        const int32_t in = m.sizes[l];
        const int32_t out = m.sizes[l + 1];
        blas.gemm(Trans::kYes, Trans::kNo, out, in, r, 1.0f, y, out, x, in, 1.0f, g, in);
        blas.gemv(Trans::kYes, r, out, 1.0f, y, out, o.ones.data(), 1, 1.0f,
                  g + static_cast<int64_t>(in) * out, 1);
        const bool reads_obs = l == 0 && (i == 0 || !config.has_trunk());
        if (!reads_obs) {
          blas.gemm(Trans::kNo, Trans::kNo, r, in, out, 1.0f, y, out, w, in, 0.0f, x, in);
        }
      }
    }
    blas.gemv(Trans::kYes, r, kStatColumns, 1.0f, y, kStatColumns, o.ones.data(), 1, 1.0f, g, 1);
  };

  const int64_t per_shard = PolicyValueModel::shard_rows(batch, shards);
  const int64_t tasks = (batch + per_shard - 1) / per_shard;
  return seconds(backend, [&] {
    backend.run_tasks(tasks, [&](int64_t shard, int worker) {
      const int64_t end = std::min(batch, (shard + 1) * per_shard);
      for (int64_t begin = shard * per_shard; begin < end; begin += chunk_rows) {
        chunk_calls(per_worker.at(static_cast<std::size_t>(worker)),
                    std::min(chunk_rows, end - begin));
      }
    });
  });
}

NnBenchResult bench_nn(Backend& backend, int64_t batch, int repeats) {
  BP_CHECK_ARG(batch >= 1, "bench_nn: batch must be at least 1, got " << batch);
  BP_CHECK_ARG(repeats >= 1, "bench_nn: repeats must be at least 1, got " << repeats);
  const ModelConfig config = ModelConfig::actor_critic();
  ModelOptions options;
  options.seed = 1;
  PolicyValueModel model(backend, config, options);
  const auto n = static_cast<std::size_t>(batch);

  // Observations spread like CartPole's, and arbitrary actions, weights and targets: the cost
  // does not depend on the values.
  std::vector<float> host_obs(n * 4);
  for (std::size_t i = 0; i < host_obs.size(); ++i) {
    const auto r = philox_draw(7, Stream::kInit, 0xBE7C4U, i);
    host_obs[i] = 2.0f * uniform_float(r[0]) - 1.0f;
  }
  std::vector<float> host_w(n);
  std::vector<int32_t> host_a(n);
  for (std::size_t i = 0; i < n; ++i) {
    host_w[i] = host_obs[4 * i] + 0.5f;
    host_a[i] = static_cast<int32_t>(i & 1U);
  }
  Buffer<float> obs(backend, n * 4);
  Buffer<float> weights(backend, n);
  Buffer<float> targets(backend, n);
  Buffer<int32_t> actions(backend, n);
  Buffer<float> values(backend, n);
  obs.from_host(host_obs);
  weights.from_host(host_w);
  targets.from_host(host_w);
  actions.from_host(host_a);
  const ConstMatrix obs_m{obs.data(), batch, 4};
  RolloutView rollout;
  rollout.obs = obs_m;
  rollout.actions = actions.data();
  rollout.weights = weights.data();
  rollout.value_targets = targets.data();
  const LossConfig loss{0.01f, 0.5f};

  uint64_t step = 0;
  const auto forward = [&] { model.act(obs_m, step++, actions.data(), nullptr, values.data()); };
  const auto train = [&] { model.accumulate_gradients(rollout, loss); };
  const int64_t chunk = model.chunk_rows();
  const auto reference = [&](bool tr) {
    return blas_reference_seconds(backend, model.blas(), model.ops(), config, batch, chunk,
                                  model.shards(), tr);
  };
  // Warm-up: page faults, thread start, cuBLAS kernel selection.
  seconds(backend, forward);
  seconds(backend, train);
  reference(false);
  reference(true);
  // Interleaved so that drifting clocks and neighbours bias both sides alike.
  std::vector<double> t_fwd, t_train, t_ref_fwd, t_ref_train;
  for (int r = 0; r < repeats; ++r) {
    t_fwd.push_back(seconds(backend, forward));
    t_ref_fwd.push_back(reference(false));
    // accumulate_gradients runs with actions the forward just sampled: the cost is the same.
    t_train.push_back(seconds(backend, train));
    t_ref_train.push_back(reference(true));
  }
  const NnFlops flops = nn_flops_per_sample(config);
  const auto samples = static_cast<double>(batch);
  NnBenchResult res;
  res.device = backend.description();
  res.blas = model.blas().description();
  res.batch = batch;
  res.repeats = repeats;
  res.chunk_rows = chunk;
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
