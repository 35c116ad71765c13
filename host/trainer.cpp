#include "batchpole/trainer.hpp"

#include <cmath>
#include <string>

#include "batchpole/buffer.hpp"

namespace batchpole {

namespace {

// Whole-episode rollouts check "has every env finished?" this often: one host sync per
// kDoneCheckEvery steps instead of one per step.
constexpr int64_t kDoneCheckEvery = 16;
constexpr float kNormalizeEps = 1e-8F;

bool episodic(const TrainConfig& c) {
  return c.algorithm != Algorithm::kA2C || c.n_steps == 0;
}
bool has_critic(const TrainConfig& c) { return c.algorithm != Algorithm::kReinforce; }
// Only A2C bootstraps; REINFORCE (with or without baseline) treats the time limit as the end.
bool bootstraps(const TrainConfig& c) { return c.algorithm == Algorithm::kA2C; }

int64_t rollout_steps(const TrainConfig& c) {
  return episodic(c) ? c.env.max_episode_steps : c.n_steps;
}


ModelOptions model_options(const TrainConfig& c, bool allow_tf32) {
  ModelOptions o;
  o.seed = c.seed;
  o.chunk_rows = c.chunk_rows;
  o.allow_tf32 = allow_tf32;
  o.adam.lr = c.lr;
  o.adam.max_grad_norm = c.algorithm == Algorithm::kA2C ? c.max_grad_norm : 0.0F;
  o.value_adam.lr = c.value_lr;
  return o;
}

// Bytes per rollout row (one env, one step) for the buffers a configuration uses.
std::size_t rollout_row_bytes(const TrainConfig& c) {
  std::size_t b = 4 * sizeof(float)          // obs
                  + sizeof(int32_t)          // actions
                  + 3 * sizeof(float)        // rewards, returns, weights
                  + 2                        // terminated, truncated
                  + sizeof(float) + sizeof(int32_t);  // final return and length
  if (has_critic(c)) b += sizeof(float);                         // values
  if (bootstraps(c)) b += 4 * sizeof(float) + sizeof(float);     // final obs, V(final obs)
  if (episodic(c)) b += 1;                                       // mask
  return b;
}

}  // namespace

// ---- configuration --------------------------------------------------------------------------

ModelConfig model_config_for(const TrainConfig& c) {
  return c.algorithm == Algorithm::kA2C ? ModelConfig::actor_critic(4, 2, c.hidden)
                                        : ModelConfig::separate(4, 2, c.hidden);
}

std::string to_string(Algorithm a) {
  switch (a) {
    case Algorithm::kReinforce:
      return "reinforce";
    case Algorithm::kBaseline:
      return "baseline";
    case Algorithm::kA2C:
    default:
      return "a2c";
  }
}

Algorithm parse_algorithm(const std::string& s) {
  if (s == "reinforce") return Algorithm::kReinforce;
  if (s == "baseline") return Algorithm::kBaseline;
  if (s == "a2c") return Algorithm::kA2C;
  BP_CHECK_ARG(false, "unknown algorithm '" << s << "' (expected reinforce, baseline or a2c)");
  return Algorithm::kA2C;
}

TrainConfig TrainConfig::notebook(Algorithm a) {
  TrainConfig c;
  c.algorithm = a;
  c.envs = 1;
  c.n_steps = 0;
  c.lr = a == Algorithm::kA2C ? 3e-4F : 1e-3F;
  c.value_lr = 1e-3F;
  c.gamma = 0.99F;
  c.entropy_coef = 0.01F;
  c.value_coef = 0.5F;
  c.max_grad_norm = 0.5F;
  c.normalize = true;
  c.hidden = 64;
  c.env.reward_mode = RewardMode::kNotebook;
  c.env.max_episode_steps = 500;
  return c;
}

void TrainConfig::validate() const {
  const auto finite_positive = [](float v) { return std::isfinite(v) && v > 0.0F; };
  BP_CHECK_ARG(envs > 0, "envs must be positive, got " << envs);
  BP_CHECK_ARG(n_steps >= 0, "n_steps must be >= 0 (0 = whole episodes), got " << n_steps);
  BP_CHECK_ARG(finite_positive(lr), "the learning rate must be positive and finite, got " << lr);
  BP_CHECK_ARG(finite_positive(value_lr),
               "the value learning rate must be positive and finite, got " << value_lr);
  BP_CHECK_ARG(std::isfinite(gamma) && gamma > 0.0F && gamma <= 1.0F,
               "gamma must be in (0, 1], got " << gamma);
  BP_CHECK_ARG(std::isfinite(entropy_coef) && entropy_coef >= 0.0F,
               "the entropy coefficient must be >= 0, got " << entropy_coef);
  BP_CHECK_ARG(std::isfinite(value_coef) && value_coef >= 0.0F,
               "the value coefficient must be >= 0, got " << value_coef);
  BP_CHECK_ARG(std::isfinite(max_grad_norm),
               "max_grad_norm must be finite (<= 0 turns clipping off), got " << max_grad_norm);
  BP_CHECK_ARG(hidden > 0 && hidden <= 65536, "hidden must be in [1, 65536], got " << hidden);
  BP_CHECK_ARG(chunk_rows >= 0, "chunk_rows must be >= 0, got " << chunk_rows);
  env.validate();
  BP_CHECK_ARG(!episodic(*this) || env.max_episode_steps > 0,
               "whole-episode rollouts (" << to_string(algorithm)
                                          << (algorithm == Algorithm::kA2C ? " with n_steps 0"
                                                                           : "")
                                          << ") need a time limit (max_episode_steps > 0)");
}

// ---- recent episodes ----------------------------------------------------------------------

void RecentEpisodes::add(const EpisodeTally& t) {
  if (t.episodes <= 0) return;
  entries_.push_back(t);
  // Drop the oldest update while the newer ones still hold at least `window_` episodes.
  double newer = 0;
  for (const auto& e : entries_) newer += e.episodes;
  while (entries_.size() > 1 && newer - entries_.front().episodes >= static_cast<double>(window_)) {
    newer -= entries_.front().episodes;
    entries_.pop_front();
  }
}

EpisodeTally RecentEpisodes::total() const {
  EpisodeTally sum;
  for (const auto& e : entries_) sum = batchpole::add(sum, e);
  return sum;
}

// ---- the trainer ----------------------------------------------------------------------------

struct Trainer::Rollout {
  Rollout(Backend& b, const TrainConfig& c) : steps(rollout_steps(c)), envs(c.envs) {
    const auto rows = static_cast<std::size_t>(steps * envs);
    const auto n = static_cast<std::size_t>(envs);
    obs = Buffer<float>(b, 4 * rows);
    actions = Buffer<int32_t>(b, rows);
    rewards = Buffer<float>(b, rows);
    returns = Buffer<float>(b, rows);
    weights = Buffer<float>(b, rows);
    terminated = Buffer<uint8_t>(b, rows);
    truncated = Buffer<uint8_t>(b, rows);
    final_return = Buffer<float>(b, rows);
    final_length = Buffer<int32_t>(b, rows);
    if (has_critic(c)) values = Buffer<float>(b, rows);
    if (bootstraps(c)) {
      final_obs = Buffer<float>(b, 4 * rows);
      truncation_value = Buffer<float>(b, rows);
      last_value = Buffer<float>(b, n);
    }
    if (episodic(c)) {
      mask = Buffer<uint8_t>(b, rows);
      ended = Buffer<uint8_t>(b, n);
    }
    moments = Buffer<Moments>(b, 1);
    tally = Buffer<EpisodeTally>(b, 1);
  }

  int64_t steps;
  int64_t envs;
  Buffer<float> obs, rewards, returns, weights, final_return, values, final_obs,
      truncation_value, last_value;
  Buffer<int32_t> actions, final_length;
  Buffer<uint8_t> terminated, truncated, mask, ended;
  Buffer<Moments> moments;
  Buffer<EpisodeTally> tally;
};

std::size_t Trainer::bytes_required(const TrainConfig& c, const Backend& backend) {
  const DeviceKind device = backend.kind();
  const auto rows = static_cast<std::size_t>(rollout_steps(c) * c.envs);
  const MemoryReport m = PolicyValueModel::memory_required(
      model_config_for(c),
      c.chunk_rows > 0 ? c.chunk_rows : PolicyValueModel::default_chunk_rows(device),
      backend.threads(), PolicyValueModel::default_shards(device));
  return VecEnv::bytes_required(c.envs, c.precision) + rows * rollout_row_bytes(c) +
         static_cast<std::size_t>(c.envs) * 8 + m.total() + record_bytes(c, device);
}

Trainer::Trainer(Backend& backend, const TrainConfig& config)
    : backend_(&backend), config_(config) {
  config_.validate();
  const std::size_t need = bytes_required(config_, backend);
  const std::size_t record = record_bytes(config_, backend.kind());
  const std::size_t have = backend.available_memory();
  BP_REQUIRE(need <= have, kOutOfMemory,
             "training " << to_string(config_.algorithm) << " on " << config_.envs
                         << " environments needs about " << need << " bytes on "
                         << backend.description() << ", but only " << have
                         << " bytes are available (fewer --envs or a shorter rollout"
                         << (record > 0 ? ", or --no-reuse-activations to save " +
                                              std::to_string(record) + " bytes"
                                        : std::string())
                         << ")");
  env_ = std::make_unique<VecEnv>(backend, config_.envs, config_.env, config_.precision);
  env_->reset(config_.seed);
  model_ = std::make_unique<PolicyValueModel>(backend, model_config_for(config_),
                                              model_options(config_, false));
  rl_ = make_rl_ops(backend);
  rollout_ = std::make_unique<Rollout>(backend, config_);
  reuse_ = record > 0;
  if (reuse_) model_->reserve_record(rollout_->steps * rollout_->envs, has_critic(config_));
}

std::size_t Trainer::record_bytes(const TrainConfig& c, DeviceKind device) {
  if (!c.reuse_activations) return 0;
  const std::size_t bytes = static_cast<std::size_t>(rollout_steps(c) * c.envs) *
                            PolicyValueModel::record_bytes_per_row(model_config_for(c),
                                                                   has_critic(c));
  // A budget from the configuration alone, not from the memory free now, so that the same
  // configuration always trains the same way (recorded activations can differ from recomputed
  // ones in the last bit, where the BLAS splits the rows differently).
  const std::size_t budget = (device == DeviceKind::kCuda ? std::size_t{8} : std::size_t{2}) << 30U;
  return bytes <= budget ? bytes : 0;
}

Trainer::~Trainer() = default;

// Steps every env up to max_steps times, storing what the update needs. With whole_episodes the
// envs first restart their episodes and collection ends once every env has finished one.
// Returns the number of steps stored.
int64_t Trainer::collect(int64_t max_steps, bool whole_episodes) {
  Rollout& r = *rollout_;
  Backend& b = *backend_;
  const int64_t n = r.envs;
  const auto un = static_cast<std::size_t>(n);
  if (whole_episodes) {
    env_->restart_episodes();
    r.ended.zero();
  }
  int64_t t = 0;
  while (t < max_steps) {
    const auto row = static_cast<std::size_t>(t) * un;
    float* obs_t = r.obs.data() + 4 * row;
    b.copy_on_device(obs_t, env_->obs(), 4 * un * sizeof(float));
    model_->act(ConstMatrix{obs_t, n, 4}, act_steps_++, r.actions.data() + row, nullptr,
                has_critic(config_) ? r.values.data() + row : nullptr,
                reuse_ ? static_cast<int64_t>(row) : -1);
    env_->step(r.actions.data() + row);
    b.copy_on_device(r.rewards.data() + row, env_->reward(), un * sizeof(float));
    b.copy_on_device(r.terminated.data() + row, env_->terminated(), un);
    b.copy_on_device(r.truncated.data() + row, env_->truncated(), un);
    b.copy_on_device(r.final_return.data() + row, env_->final_return(), un * sizeof(float));
    b.copy_on_device(r.final_length.data() + row, env_->final_length(), un * sizeof(int32_t));
    if (bootstraps(config_)) {
      b.copy_on_device(r.final_obs.data() + 4 * row, env_->final_obs(), 4 * un * sizeof(float));
    }
    ++t;
    if (whole_episodes) {
      rl_->mark_ended(r.ended.data(), r.terminated.data() + row, r.truncated.data() + row, n);
      if (t % kDoneCheckEvery == 0 && rl_->count_nonzero(r.ended.data(), n) == n) break;
    }
  }
  env_steps_ += t * n;
  return t;
}

UpdateRecord Trainer::update() {
  Rollout& r = *rollout_;
  const TrainConfig& c = config_;
  const bool whole = episodic(c);
  const int64_t steps = collect(r.steps, whole);
  const int64_t rows = steps * r.envs;
  const uint8_t* mask = whole ? r.mask.data() : nullptr;
  if (whole) {
    rl_->first_episode_mask(r.terminated.data(), r.truncated.data(), steps, r.envs,
                            r.mask.data());
  }

  // Episodes that ended (one host sync per update).
  rl_->episode_tally({r.terminated.data(), r.truncated.data(), r.final_return.data(),
                      r.final_length.data(), mask},
                     rows, r.tally.data());
  const EpisodeTally tally = r.tally.to_host()[0];

  // Returns.
  ReturnsArgs ra;
  ra.rewards = r.rewards.data();
  ra.terminated = r.terminated.data();
  ra.truncated = r.truncated.data();
  ra.gamma = c.gamma;
  ra.steps = steps;
  ra.envs = r.envs;
  ra.returns = r.returns.data();
  if (bootstraps(c)) {
    if (!whole) {
      model_->values(ConstMatrix{env_->obs(), r.envs, 4}, r.last_value.data());
      ra.last_value = r.last_value.data();
    }
    if (tally.truncations > 0) {
      model_->values(ConstMatrix{r.final_obs.data(), rows, 4}, r.truncation_value.data());
      ra.truncation_value = r.truncation_value.data();
    }
  }
  rl_->returns(ra);

  // Weights: normalised returns (REINFORCE) or advantages G - V (baseline, A2C).
  const float* weights = r.returns.data();
  if (has_critic(c)) {
    rl_->subtract(r.returns.data(), r.values.data(), rows, r.weights.data());
    weights = r.weights.data();
  } else if (c.normalize) {
    backend_->copy_on_device(r.weights.data(), r.returns.data(),
                             static_cast<std::size_t>(rows) * sizeof(float));
    weights = r.weights.data();
  }
  if (c.normalize) {
    rl_->moments(weights, mask, rows, r.moments.data());
    rl_->normalize(r.weights.data(), mask, rows, r.moments.data(), kNormalizeEps);
  }

  // The loss. REINFORCE and baseline: the notebook's sum over each episode, averaged over the
  // N episodes; the baseline's value regression is a mean over samples (F.mse_loss). A2C: means
  // over samples, with entropy bonus and value coefficient.
  RolloutView view;
  view.obs = ConstMatrix{r.obs.data(), rows, 4};
  view.actions = r.actions.data();
  view.weights = weights;
  view.mask = mask;
  view.recorded = reuse_;
  LossConfig loss;
  const double valid = whole ? static_cast<double>(tally.length_sum) : static_cast<double>(rows);
  switch (c.algorithm) {
    case Algorithm::kReinforce:
      view.count = static_cast<float>(r.envs);
      loss.entropy_coef = 0.0F;
      loss.value_coef = 0.0F;
      break;
    case Algorithm::kBaseline:
      view.value_targets = r.returns.data();
      view.count = static_cast<float>(r.envs);
      loss.entropy_coef = 0.0F;
      loss.value_coef = static_cast<float>(static_cast<double>(r.envs) / std::max(valid, 1.0));
      break;
    case Algorithm::kA2C:
    default:
      view.value_targets = r.returns.data();
      view.count = 0.0F;  // the valid samples, counted on the device
      loss.entropy_coef = c.entropy_coef;
      loss.value_coef = c.value_coef;
      break;
  }
  model_->accumulate_gradients(view, loss, GradientMode::kOverwrite);
  model_->step();
  const UpdateStats stats = model_->stats();

  ++updates_;
  episodes_ += static_cast<int64_t>(tally.episodes);
  recent_.add(tally);

  UpdateRecord rec;
  rec.update = updates_;
  rec.env_steps = env_steps_;
  rec.episodes = episodes_;
  rec.rollout_steps = steps;
  rec.recent = recent_.total();
  rec.loss = stats;
  // Per valid sample, whatever divisor the loss used (episodes for REINFORCE and baseline).
  const double per_sample = stats.divisor / std::max(stats.valid_samples, 1.0);
  rec.loss.entropy = stats.entropy * per_sample;
  rec.loss.value_loss = stats.value_loss * per_sample;
  rec.value_loss = rec.loss.value_loss;
  rec.finite = std::isfinite(stats.policy_loss) && std::isfinite(stats.value_loss) &&
               std::isfinite(stats.entropy) && std::isfinite(stats.grad_norm) &&
               std::isfinite(stats.value_grad_norm);
  return rec;
}

}  // namespace batchpole
