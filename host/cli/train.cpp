// `batchpole train` and `batchpole eval`.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "batchpole/trainer.hpp"
#include "commands.hpp"

namespace batchpole::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int /*sig*/) { g_interrupted.store(true); }

// Options of `train` that are not part of TrainConfig (the run, not the learning).
struct RunOptions {
  std::string device = "auto";
  int threads = 0;
  int64_t env_steps = 0;  // budgets; 0 = none (then the default cap below applies)
  int64_t updates = 0;
  double seconds = 0;
  double target_return = 475.0;
  std::string out;
  int64_t checkpoint_every = 100;
  std::string resume;
  std::string config_file;
  std::string preset;
  bool quiet = false;
};

// Without any budget a run that never reaches the target stops here.
constexpr int64_t kDefaultEnvStepCap = 50'000'000;
constexpr int64_t kMinEpisodesForTarget = 100;

// The raw flags, kept apart so that a --config file can fill what the command line left out.
struct TrainFlags {
  std::optional<std::string> algo, precision, reward;
  std::optional<int64_t> envs, chunk_rows;
  std::optional<int32_t> n_steps, hidden, max_episode_steps;
  std::optional<float> lr, value_lr, gamma, entropy_coef, value_coef, max_grad_norm;
  std::optional<double> theta_threshold_deg;
  std::optional<uint64_t> seed;
  bool no_normalize = false;
  bool no_reuse_activations = false;
};

std::string metrics_header() {
  return "update,env_steps,wall_s,episodes,recent_episodes,mean_return,min_return,max_return,"
         "mean_length,min_length,max_length,policy_loss,value_loss,entropy,grad_norm,"
         "value_grad_norm,steps_per_s";
}

std::string metrics_row(const UpdateRecord& r, double wall_s, double steps_per_s) {
  const EpisodeTally& t = r.recent;
  const double n = std::max(t.episodes, 1.0);
  const bool any = t.episodes > 0;
  return fmt::format("{},{},{:.4f},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.8g},{:.8g},"
                     "{:.8g},{:.8g},{:.8g},{:.6g}",
                     r.update, r.env_steps, wall_s, r.episodes, t.episodes,
                     any ? t.return_sum / n : 0.0, any ? t.return_min : 0.0,
                     any ? t.return_max : 0.0, any ? t.length_sum / n : 0.0,
                     any ? t.length_min : 0.0, any ? t.length_max : 0.0, r.loss.policy_loss,
                     r.value_loss, r.loss.entropy, r.loss.grad_norm, r.loss.value_grad_norm,
                     steps_per_s);
}

// The default batch size: what solves CartPole-v1 fastest on the device (BENCHMARKS.md).
// On the GPU (not yet measured) a batch large enough to fill it.
int64_t default_envs(DeviceKind kind) { return kind == DeviceKind::kCuda ? 16384 : 32; }

TrainConfig build_config(const RunOptions& run, const TrainFlags& f, DeviceKind device,
                         nlohmann::json* file_json) {
  const Algorithm algo = parse_algorithm(f.algo.value_or(
      file_json != nullptr && file_json->contains("algo") ? (*file_json)["algo"].get<std::string>()
                                                          : "a2c"));
  TrainConfig c;
  if (run.preset == "notebook") {
    c = TrainConfig::notebook(algo);
  } else {
    BP_CHECK_ARG(run.preset.empty(), "unknown preset '" << run.preset << "' (expected notebook)");
    c.algorithm = algo;
    c.envs = default_envs(device);
    if (algo != Algorithm::kA2C) {
      c.lr = 1e-3F;  // the notebook's REINFORCE learning rate
    }
  }
  if (file_json != nullptr) c = config_from_json(file_json->dump(), c);
  if (f.envs) c.envs = *f.envs;
  if (f.n_steps) c.n_steps = *f.n_steps;
  if (f.lr) c.lr = *f.lr;
  if (f.value_lr) c.value_lr = *f.value_lr;
  if (f.gamma) c.gamma = *f.gamma;
  if (f.entropy_coef) c.entropy_coef = *f.entropy_coef;
  if (f.value_coef) c.value_coef = *f.value_coef;
  if (f.max_grad_norm) c.max_grad_norm = *f.max_grad_norm;
  if (f.hidden) c.hidden = *f.hidden;
  if (f.seed) c.seed = *f.seed;
  if (f.precision) c.precision = parse_precision(*f.precision);
  if (f.reward) c.env.reward_mode = parse_reward_mode(*f.reward);
  if (f.max_episode_steps) c.env.max_episode_steps = *f.max_episode_steps;
  if (f.theta_threshold_deg) {
    c.env.theta_threshold = *f.theta_threshold_deg * 2.0 * 3.141592653589793 / 360.0;
  }
  if (f.chunk_rows) c.chunk_rows = *f.chunk_rows;
  if (f.no_normalize) c.normalize = false;
  if (f.no_reuse_activations) c.reuse_activations = false;
  c.validate();
  return c;
}

// Keys of --config files that belong to the run rather than to TrainConfig.
void take_run_keys(nlohmann::json& j, RunOptions& run, const CLI::App& cmd) {
  const auto take = [&](const char* key, const char* flag, auto& field) {
    if (!j.contains(key)) return;
    if (cmd.count(flag) == 0) field = j[key].get<std::remove_reference_t<decltype(field)>>();
    j.erase(key);
  };
  try {
    take("device", "--device", run.device);
    take("threads", "--threads", run.threads);
    take("env_steps", "--env-steps", run.env_steps);
    take("updates", "--updates", run.updates);
    take("seconds", "--seconds", run.seconds);
    take("target_return", "--target-return", run.target_return);
    take("out", "--out", run.out);
    take("checkpoint_every", "--checkpoint-every", run.checkpoint_every);
    take("preset", "--preset", run.preset);
  } catch (const nlohmann::json::exception& e) {
    BP_CHECK_ARG(false, "--config: a key has the wrong type: " << e.what());
  }
}

// Checks that `dir` can hold a run, creating it; refuses one that already holds a run unless
// resuming, so that nothing saved is overwritten.
void prepare_out_dir(const std::string& dir, bool resuming) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  BP_CHECK_ARG(!ec && fs::is_directory(dir), "--out " << dir << " cannot be created: "
                                                      << (ec ? ec.message() : "not a directory"));
  const fs::path probe = fs::path(dir) / ".write-test";
  {
    std::ofstream f(probe);
    BP_CHECK_ARG(f.good(), "--out " << dir << " is not writable");
  }
  fs::remove(probe, ec);
  if (!resuming) {
    for (const char* name : {"metrics.csv", "checkpoint.bin", "summary.json"}) {
      BP_CHECK_ARG(!fs::exists(fs::path(dir) / name),
                   "--out " << dir << " already holds a run (" << name
                            << "); pass --resume " << dir
                            << " to continue it, or choose another --out");
    }
  }
}

// Keeps the first `updates` data rows of metrics.csv (those the checkpoint covers) and returns
// the file open for appending.
std::ofstream reopen_metrics(const fs::path& path, int64_t updates) {
  std::vector<std::string> keep;
  {
    std::ifstream in(path);
    std::string line;
    int64_t row = -1;
    while (std::getline(in, line)) {
      if (row >= updates) break;
      keep.push_back(line);
      ++row;
    }
  }
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (keep.empty()) keep.push_back(metrics_header());
    for (const auto& l : keep) out << l << '\n';
  }
  fs::rename(tmp, path);
  return std::ofstream(path, std::ios::app);
}

std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

struct Progress {
  bool tty = isatty(STDERR_FILENO) != 0;
  Clock::time_point last = Clock::now() - std::chrono::hours(1);

  void show(const UpdateRecord& r, double wall, double rate, double budget_fraction, bool force) {
    const auto now = Clock::now();
    if (!force && now - last < std::chrono::milliseconds(tty ? 250 : 5000)) return;
    last = now;
    const EpisodeTally& t = r.recent;
    const double n = std::max(t.episodes, 1.0);
    std::string eta = "-";
    if (budget_fraction > 0.01 && budget_fraction < 1.0) {
      eta = fmt::format("{:.0f}s", wall * (1.0 - budget_fraction) / budget_fraction);
    }
    const std::string line = fmt::format(
        "update {:>6}  steps {:>8}  {:>7}/s  return {:6.1f} (min {:5.0f} max {:5.0f})  "
        "length {:6.1f}  loss {:+.3f}/{:.3f}  entropy {:.3f}  {:6.1f}s  left {}",
        r.update, human(static_cast<double>(r.env_steps)), human(rate), t.return_sum / n,
        t.episodes > 0 ? t.return_min : 0.0, t.episodes > 0 ? t.return_max : 0.0,
        t.length_sum / n, r.loss.policy_loss, r.value_loss, r.loss.entropy, wall, eta);
    if (tty) {
      fmt::print(stderr, "\r{}\033[K", line);
    } else {
      fmt::print(stderr, "{}\n", line);
    }
  }
  void done() const {
    if (tty) fmt::print(stderr, "\n");
  }
};

int run_train(RunOptions run, const TrainFlags& flags, const CLI::App& cmd) {
  BP_CHECK_ARG(run.env_steps >= 0 && run.updates >= 0 && run.seconds >= 0 &&
                   std::isfinite(run.seconds),
               "budgets (--env-steps, --updates, --seconds) must be >= 0");
  BP_CHECK_ARG(std::isfinite(run.target_return), "--target-return must be finite");
  BP_CHECK_ARG(run.checkpoint_every >= 0, "--checkpoint-every must be >= 0");

  // Resume: the checkpoint holds the configuration; the run continues in its directory.
  std::string checkpoint_path;
  std::string extra_text = "{}";
  std::optional<TrainConfig> resumed;
  if (!run.resume.empty()) {
    fs::path p = run.resume;
    if (fs::is_directory(p)) p /= "checkpoint.bin";
    BP_CHECK_ARG(fs::exists(p), "--resume: no checkpoint at " << p.string());
    checkpoint_path = p.string();
    resumed = Trainer::read_checkpoint_config(checkpoint_path, &extra_text);
    if (run.out.empty()) run.out = p.parent_path().string();
  }

  nlohmann::json file_json;
  bool have_file = false;
  if (!run.config_file.empty()) {
    std::ifstream in(run.config_file);
    BP_CHECK_ARG(in.good(), "--config: cannot read " << run.config_file);
    try {
      file_json = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      BP_CHECK_ARG(false, "--config " << run.config_file << " is not valid JSON: " << e.what());
    }
    BP_CHECK_ARG(file_json.is_object(), "--config " << run.config_file << " must hold an object");
    take_run_keys(file_json, run, cmd);
    have_file = true;
  }

  BackendOptions bo;
  bo.device = DeviceRequest::parse(run.device);
  bo.threads = run.threads;
  const auto backend = make_backend(bo);

  TrainConfig config;
  if (resumed) {
    config = *resumed;
    const std::string again =
        config_to_json(build_config(run, flags, backend->kind(), have_file ? &file_json : nullptr));
    const bool flags_given = flags.algo || flags.envs || flags.n_steps || flags.lr ||
                             flags.value_lr || flags.gamma || flags.hidden || flags.seed ||
                             flags.precision || have_file;
    BP_CHECK_ARG(!flags_given || again == config_to_json(config),
                 "--resume continues the checkpoint's configuration; leave out the training "
                 "flags or give the same values. The checkpoint has:\n"
                     << config_to_json(config));
  } else {
    config = build_config(run, flags, backend->kind(), have_file ? &file_json : nullptr);
  }
  if (run.out.empty()) {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::gmtime(&now));
    run.out = fmt::format("runs/{}-{}", to_string(config.algorithm), stamp);
  }
  prepare_out_dir(run.out, resumed.has_value());
  const fs::path out = run.out;
  if (checkpoint_path.empty()) checkpoint_path = (out / "checkpoint.bin").string();

  Trainer trainer(*backend, config);
  double wall_offset = 0;
  nlohmann::json solved_at;
  if (resumed) {
    trainer.restore_checkpoint(checkpoint_path);
    const auto extra = nlohmann::json::parse(extra_text);
    wall_offset = extra.value("wall_s", 0.0);
    if (extra.contains("solved")) solved_at = extra["solved"];
  }
  std::ofstream metrics = resumed ? reopen_metrics(out / "metrics.csv", trainer.updates())
                                  : std::ofstream(out / "metrics.csv", std::ios::trunc);
  if (!resumed) metrics << metrics_header() << '\n';
  BP_CHECK_ARG(metrics.good(), "cannot write " << (out / "metrics.csv").string());

  if (!run.quiet) {
    fmt::print(stderr, "batchpole train: {} on {} envs, {}, {} -> {}\n", to_string(config.algorithm),
               config.envs, backend->description(), to_string(config.precision), out.string());
  }
  const int64_t step_cap =
      run.env_steps > 0 ? run.env_steps
                        : (run.updates > 0 || run.seconds > 0 ? 0 : kDefaultEnvStepCap);
  const auto extra_json = [&](double wall) {
    nlohmann::json e = {{"wall_s", wall}};
    if (!solved_at.is_null()) e["solved"] = solved_at;
    return e.dump();
  };

  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
  Progress progress;
  const auto start = Clock::now();
  const int64_t start_steps = trainer.env_steps();
  UpdateRecord last{};
  last.update = trainer.updates();
  last.env_steps = trainer.env_steps();
  last.recent = trainer.recent().total();
  bool stop_nonfinite = false;
  std::string stop_reason = "budget";
  auto last_rate_time = start;
  int64_t last_rate_steps = start_steps;
  double rate = 0;
  while (true) {
    const int64_t before = trainer.env_steps();
    const auto t0 = Clock::now();
    const UpdateRecord rec = trainer.update();
    const auto t1 = Clock::now();
    const double wall = wall_offset + std::chrono::duration<double>(t1 - start).count();
    const double update_rate = static_cast<double>(rec.env_steps - before) /
                               std::max(1e-9, std::chrono::duration<double>(t1 - t0).count());
    if (t1 - last_rate_time > std::chrono::milliseconds(500) || rate == 0) {
      rate = static_cast<double>(rec.env_steps - last_rate_steps) /
             std::max(1e-9, std::chrono::duration<double>(t1 - last_rate_time).count());
      last_rate_time = t1;
      last_rate_steps = rec.env_steps;
    }
    if (!rec.finite) {
      stop_nonfinite = true;
      stop_reason = "non-finite loss or gradient";
      break;
    }
    metrics << metrics_row(rec, wall, update_rate) << '\n';
    metrics.flush();
    last = rec;
    const EpisodeTally& t = rec.recent;
    const double mean = t.episodes > 0 ? t.return_sum / t.episodes : 0.0;
    if (solved_at.is_null() && t.episodes >= kMinEpisodesForTarget && mean >= run.target_return) {
      solved_at = {{"update", rec.update}, {"env_steps", rec.env_steps}, {"wall_s", wall}};
      stop_reason = "target";
    }
    double fraction = 0;
    if (step_cap > 0) fraction = std::max(fraction, static_cast<double>(rec.env_steps) / static_cast<double>(step_cap));
    if (run.updates > 0) fraction = std::max(fraction, static_cast<double>(rec.update) / static_cast<double>(run.updates));
    if (run.seconds > 0) fraction = std::max(fraction, wall / run.seconds);
    const bool done = !solved_at.is_null() || fraction >= 1.0 || g_interrupted.load();
    if (!run.quiet) progress.show(rec, wall, rate, fraction, done);
    if (run.checkpoint_every > 0 && rec.update % run.checkpoint_every == 0 && !done) {
      trainer.save_checkpoint(checkpoint_path, extra_json(wall));
    }
    if (g_interrupted.load()) stop_reason = "interrupted";
    if (done) break;
  }
  if (!run.quiet) progress.done();
  const double wall = wall_offset + std::chrono::duration<double>(Clock::now() - start).count();
  if (stop_nonfinite) {
    fmt::print(stderr,
               "batchpole train: stopped at update {}: a loss or gradient norm is not finite "
               "(NaN or infinity). The last good checkpoint is {}; try a smaller --lr.\n",
               last.update + 1, fs::exists(checkpoint_path) ? checkpoint_path : "(none yet)");
    return 1;
  }
  trainer.save_checkpoint(checkpoint_path, extra_json(wall));

  const EpisodeTally& t = last.recent;
  const double run_steps = static_cast<double>(trainer.env_steps() - start_steps);
  const double run_wall = std::chrono::duration<double>(Clock::now() - start).count();
  nlohmann::json summary = {
      {"solved", !solved_at.is_null()},
      {"env_steps_to_solve", solved_at.is_null() ? nlohmann::json() : solved_at["env_steps"]},
      {"wall_s_to_solve", solved_at.is_null() ? nlohmann::json() : solved_at["wall_s"]},
      {"updates_to_solve", solved_at.is_null() ? nlohmann::json() : solved_at["update"]},
      {"final_mean_return", t.episodes > 0 ? t.return_sum / t.episodes : 0.0},
      {"final_mean_length", t.episodes > 0 ? t.length_sum / t.episodes : 0.0},
      {"recent_episodes", t.episodes},
      {"target_return", run.target_return},
      {"env_steps", trainer.env_steps()},
      {"updates", trainer.updates()},
      {"episodes", last.episodes},
      {"wall_s", wall},
      {"env_steps_per_s", run_steps / std::max(run_wall, 1e-9)},
      {"stop_reason", stop_reason},
      {"device", backend->description()},
      {"threads", backend->threads()},
      {"config", nlohmann::json::parse(config_to_json(config))},
      {"version", BATCHPOLE_VERSION}};
  {
    const fs::path tmp = out / "summary.json.tmp";
    std::ofstream(tmp) << summary.dump(2) << '\n';
    fs::rename(tmp, out / "summary.json");
  }
  if (!run.quiet) {
    fmt::print(stderr, "{} after {} updates, {} env steps, {:.1f} s ({}/s); mean return {:.1f}\n",
               solved_at.is_null() ? "stopped (" + stop_reason + ")" : "solved",
               trainer.updates(), human(static_cast<double>(trainer.env_steps())), wall,
               human(run_steps / std::max(run_wall, 1e-9)),
               t.episodes > 0 ? t.return_sum / t.episodes : 0.0);
  }
  return g_interrupted.load() ? 130 : 0;
}

// ---- eval -------------------------------------------------------------------------------------

struct EvalOptions {
  std::string checkpoint;
  int64_t episodes = 100;
  std::string device = "auto";
  bool greedy = false;
  bool json = false;
  uint64_t seed = 12345;
  int threads = 0;
};

void run_eval(const EvalOptions& o) {
  BP_CHECK_ARG(o.episodes > 0, "--episodes must be positive, got " << o.episodes);
  const TrainConfig config = Trainer::read_checkpoint_config(o.checkpoint);
  const auto params = Trainer::read_checkpoint_parameters(o.checkpoint);
  BackendOptions bo;
  bo.device = DeviceRequest::parse(o.device);
  bo.threads = o.threads;
  const auto backend = make_backend(bo);
  ModelOptions mo;
  mo.seed = o.seed;
  PolicyValueModel model(*backend, model_config_for(config), mo);
  model.set_parameters(params);
  CartPoleParams env_params = config.env;
  const int32_t limit = env_params.max_episode_steps > 0 ? env_params.max_episode_steps : 100000;
  VecEnv env(*backend, o.episodes, env_params, config.precision);
  env.reset(o.seed);

  const auto n = static_cast<std::size_t>(o.episodes);
  Buffer<int32_t> actions(*backend, n);
  Buffer<float> logits(*backend, 2 * n);
  std::vector<int32_t> host_actions(n);
  std::vector<double> returns(n, 0.0);
  std::vector<uint8_t> finished(n, 0);
  std::size_t remaining = n;
  for (int32_t t = 0; t < limit && remaining > 0; ++t) {
    const ConstMatrix obs{env.obs(), o.episodes, 4};
    if (o.greedy) {
      model.logits(obs, logits.data());
      const auto l = logits.to_host();
      for (std::size_t i = 0; i < n; ++i) host_actions[i] = l[2 * i + 1] > l[2 * i] ? 1 : 0;
      actions.from_host(host_actions);
    } else {
      model.act(obs, static_cast<uint64_t>(t), actions.data());
    }
    env.step(actions.data());
    const HostStep s = env.fetch();
    for (std::size_t i = 0; i < n; ++i) {
      if (finished[i] == 0 && (s.terminated[i] | s.truncated[i]) != 0) {
        finished[i] = 1;
        returns[i] = s.final_return[i];
        --remaining;
      }
    }
  }
  double sum = 0;
  double lo = 1e300;
  double hi = -1e300;
  for (double r : returns) {
    sum += r;
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  const double mean = sum / static_cast<double>(n);
  double var = 0;
  for (double r : returns) var += (r - mean) * (r - mean);
  const double sd = std::sqrt(var / static_cast<double>(n));
  if (o.json) {
    const nlohmann::json j = {{"checkpoint", o.checkpoint}, {"episodes", o.episodes},
                              {"greedy", o.greedy},         {"mean_return", mean},
                              {"std_return", sd},           {"min_return", lo},
                              {"max_return", hi},           {"device", backend->description()},
                              {"algo", to_string(config.algorithm)}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{} episodes ({} policy, {}): mean return {:.2f}, std {:.2f}, min {:.0f}, max {:.0f}\n",
             o.episodes, o.greedy ? "greedy" : "sampled", backend->description(), mean, sd, lo, hi);
}

}  // namespace

void add_train_commands(CLI::App& app) {
  auto run = std::make_shared<RunOptions>();
  auto flags = std::make_shared<TrainFlags>();
  auto* cmd = app.add_subcommand("train", "Train REINFORCE, REINFORCE with baseline or A2C");
  cmd->footer(
      "With no flags: A2C on the GPU if there is one (else the CPU), stopping when the mean "
      "return of the last 100 or more finished episodes reaches 475. Writes metrics.csv, "
      "summary.json and checkpoint.bin in --out. Ctrl-C saves a checkpoint and exits (130).");
  cmd->add_option("--algo", flags->algo, "reinforce, baseline or a2c (default a2c)")
      ->check(CLI::IsMember({"reinforce", "baseline", "a2c"}));
  cmd->add_option("--device", run->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  cmd->add_option("--envs", flags->envs, "Environments stepped together (default: 32 CPU, "
                                          "16384 GPU; the preset: 1)");
  cmd->add_option("--n-steps", flags->n_steps,
                  "A2C rollout length; 0 = whole episodes (the notebook's variant)");
  cmd->add_option("--env-steps", run->env_steps, "Budget: environment steps (0 = none)");
  cmd->add_option("--updates", run->updates, "Budget: updates (0 = none)");
  cmd->add_option("--seconds", run->seconds, "Budget: wall-clock seconds (0 = none)");
  cmd->add_option("--target-return", run->target_return,
                  "Stop when the mean return of the last >= 100 finished episodes reaches this")
      ->capture_default_str();
  cmd->add_option("--lr", flags->lr, "Learning rate (policy or actor-critic)");
  cmd->add_option("--value-lr", flags->value_lr, "Learning rate of the baseline's value network");
  cmd->add_option("--gamma", flags->gamma, "Discount factor in (0, 1]");
  cmd->add_option("--entropy-coef", flags->entropy_coef, "A2C entropy bonus");
  cmd->add_option("--value-coef", flags->value_coef, "A2C value-loss coefficient");
  cmd->add_option("--max-grad-norm", flags->max_grad_norm, "A2C gradient clipping (<= 0: off)");
  cmd->add_flag("--no-normalize", flags->no_normalize,
                "Do not normalise returns (REINFORCE) or advantages");
  cmd->add_flag("--no-reuse-activations", flags->no_reuse_activations,
                "Run the forward pass again in each update instead of keeping the activations "
                "of acting (less memory, slower)");
  cmd->add_option("--hidden", flags->hidden, "Hidden units per layer (default 64)");
  cmd->add_option("--seed", flags->seed, "Seed of parameters, environments and sampling");
  cmd->add_option("--precision", flags->precision, "Physics precision: f32 or f64")
      ->check(CLI::IsMember({"f32", "f64"}));
  cmd->add_option("--reward", flags->reward, "v1, notebook or sutton-barto")
      ->check(CLI::IsMember({"v1", "notebook", "sutton-barto"}));
  cmd->add_option("--theta-threshold-deg", flags->theta_threshold_deg,
                  "Pole angle limit in degrees (CartPole-v1: 12; the notebook's exercise: 6)");
  cmd->add_option("--max-episode-steps", flags->max_episode_steps, "Time limit (default 500)");
  cmd->add_option("--chunk-rows", flags->chunk_rows, "Rows per network pass (memory bound)");
  cmd->add_option("--threads", run->threads, "CPU threads (0 = all)")->capture_default_str();
  cmd->add_option("--out", run->out, "Output directory (default runs/ALGO-TIMESTAMP)");
  cmd->add_option("--checkpoint-every", run->checkpoint_every, "Updates between checkpoints")
      ->capture_default_str();
  cmd->add_option("--resume", run->resume, "Continue from a checkpoint file or run directory");
  cmd->add_option("--config", run->config_file, "JSON file with the same keys (flags win)");
  cmd->add_option("--preset", run->preset, "notebook: the notebook's algorithm and settings")
      ->check(CLI::IsMember({"notebook"}));
  cmd->add_flag("-q,--quiet", run->quiet, "No progress display");
  cmd->callback([run, flags, cmd] {
    const int code = run_train(*run, *flags, *cmd);
    if (code != 0) throw CLI::RuntimeError(code);
  });

  auto eo = std::make_shared<EvalOptions>();
  auto* ev = app.add_subcommand("eval", "Evaluate a checkpoint: returns over whole episodes");
  ev->add_option("--checkpoint", eo->checkpoint, "checkpoint.bin of a training run")->required();
  ev->add_option("--episodes", eo->episodes, "Episodes (played in parallel)")->capture_default_str();
  ev->add_option("--device", eo->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  ev->add_flag("--greedy", eo->greedy, "Take the most probable action instead of sampling");
  ev->add_option("--seed", eo->seed, "Seed of start states and sampling")->capture_default_str();
  ev->add_option("--threads", eo->threads, "CPU threads (0 = all)");
  ev->add_flag("--json", eo->json, "Print JSON (key mean_return)");
  ev->callback([eo] { run_eval(*eo); });
}

}  // namespace batchpole::cli
