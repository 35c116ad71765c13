// The training loop of a run: budgets, the target, metrics, checkpoints, the summary.
#include "batchpole/run/train_run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "batchpole/io/config_json.hpp"
#include "run_dir.hpp"

namespace batchpole {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Where a run reads its checkpoint from and writes to.
struct RunPaths {
  fs::path out;
  fs::path checkpoint;   // written here
  fs::path resume_from;  // read from ("" when not resuming)
};

// The directory of the run being resumed ("." for a bare file name).
fs::path resume_dir(const RunPaths& p) {
  const fs::path dir = p.resume_from.parent_path();
  return dir.empty() ? fs::path(".") : dir;
}

// Whether the run writes into the directory it resumes from (rather than into another --out,
// which must then not hold a run of its own).
bool in_place(const RunPaths& p) {
  std::error_code ec;
  return fs::equivalent(p.out, resume_dir(p), ec) && !ec;
}

// The caller's JSON of a checkpoint (wall time, when it was solved), checked: the checksum
// vouches for the bytes, not for who wrote them.
void read_extra(const std::string& text, const fs::path& from, double& wall_offset,
                nlohmann::json& solved_at) {
  const auto extra = nlohmann::json::parse(text, nullptr, false);
  const auto number = [](const nlohmann::json& j) {
    return j.is_number() && std::isfinite(j.get<double>()) && j.get<double>() >= 0;
  };
  const bool ok =
      extra.is_object() && (!extra.contains("wall_s") || number(extra["wall_s"])) &&
      (!extra.contains("solved") ||
       (extra["solved"].is_object() && number(extra["solved"].value("update", nlohmann::json())) &&
        number(extra["solved"].value("env_steps", nlohmann::json())) &&
        number(extra["solved"].value("wall_s", nlohmann::json()))));
  BP_CHECK_ARG(ok, "checkpoint " << from.string() << " holds damaged run information: " << text);
  wall_offset = extra.value("wall_s", 0.0);
  if (extra.contains("solved")) solved_at = extra["solved"];
}

RunPaths run_paths(const RunConfig& run, const TrainConfig& train) {
  RunPaths p;
  if (!run.resume.empty()) {
    p.resume_from = run.resume;
    std::error_code ec;
    if (fs::is_directory(p.resume_from, ec)) p.resume_from /= "checkpoint.bin";
  }
  if (!run.out.empty()) {
    p.out = run.out;
  } else if (!p.resume_from.empty()) {
    p.out = resume_dir(p);
  } else {
    const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::gmtime(&now));
    p.out = fs::path("runs") / fmt::format("{}-{}", to_string(train.algorithm), stamp);
  }
  p.checkpoint = p.out / "checkpoint.bin";
  return p;
}

}  // namespace

std::string metrics_header() {
  return "update,env_steps,wall_s,episodes,recent_episodes,mean_return,min_return,max_return,"
         "mean_length,min_length,max_length,policy_loss,value_loss,entropy,grad_norm,"
         "value_grad_norm,steps_per_s";
}

std::string metrics_row(const UpdateRecord& r, double wall_s, double steps_per_s) {
  const EpisodeTally& t = r.recent;
  const double n = std::max(t.episodes, 1.0);
  const bool any = t.episodes > 0;
  return fmt::format(
      "{},{},{:.4f},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.8g},{:.8g},"
      "{:.8g},{:.8g},{:.8g},{:.6g}",
      r.update, r.env_steps, wall_s, r.episodes, t.episodes, any ? t.return_sum / n : 0.0,
      any ? t.return_min : 0.0, any ? t.return_max : 0.0, any ? t.length_sum / n : 0.0,
      any ? t.length_min : 0.0, any ? t.length_max : 0.0, r.loss.policy_loss, r.value_loss,
      r.loss.entropy, r.loss.grad_norm, r.loss.value_grad_norm, steps_per_s);
}

RunResult run_training(Device& device, const RunConfig& run, const TrainConfig& requested,
                       bool train_keys_given, const RunCallbacks& cb) {
  const auto notice = [&](const std::string& m) {
    if (cb.message && !m.empty()) cb.message(m);
  };
  const RunPaths paths = run_paths(run, requested);
  const bool resuming = !paths.resume_from.empty();
  TrainConfig config = requested;
  std::string extra_text = "{}";
  if (resuming) {
    std::error_code ec;
    if (!fs::exists(paths.resume_from, ec)) {
      // A run killed before its first checkpoint leaves its metrics and nothing to continue.
      const bool started = fs::exists(resume_dir(paths) / "metrics.csv", ec);
      BP_CHECK_ARG(false, "--resume: no checkpoint at "
                              << paths.resume_from.string()
                              << (started ? "; the run there stopped before its first checkpoint "
                                            "and cannot be continued. Train afresh with --out " +
                                                resume_dir(paths).string() +
                                                " (without --resume), which takes the directory "
                                                "over"
                                          : std::string()));
    }
    config = Trainer::read_checkpoint_config(paths.resume_from.string(), &extra_text);
    BP_CHECK_ARG(!train_keys_given || config_to_json(requested) == config_to_json(config),
                 "--resume continues the checkpoint's configuration; leave out the training "
                 "flags or give the same values. The checkpoint has:\n"
                     << config_to_json(config));
  }
  double wall_offset = 0;
  nlohmann::json solved_at;
  if (resuming) read_extra(extra_text, paths.resume_from, wall_offset, solved_at);
  // Resuming into another directory starts a run there: one that holds a run is refused.
  notice(prepare_run_dir(paths.out, resuming && in_place(paths)));

  Trainer trainer(device, config);
  if (resuming) trainer.restore_checkpoint(paths.resume_from.string());
  const fs::path metrics_path = paths.out / "metrics.csv";
  int64_t rows_kept = 0;
  std::ofstream metrics = resuming
                              ? continue_metrics(resume_dir(paths) / "metrics.csv", metrics_path,
                                                 trainer.updates(), metrics_header(), &rows_kept)
                              : std::ofstream(metrics_path, std::ios::trunc);
  if (resuming && rows_kept < trainer.updates()) {
    notice(
        fmt::format("{} held {} of the {} updates before the checkpoint; {} continues with "
                    "update {}",
                    (resume_dir(paths) / "metrics.csv").string(), rows_kept, trainer.updates(),
                    metrics_path.string(), trainer.updates() + 1));
  }
  if (!resuming) metrics << metrics_header() << '\n';
  BP_CHECK_ARG(metrics.good(), "cannot write " << metrics_path.string());

  notice(fmt::format("batchpole train: {} on {} envs, {}, {} -> {}", to_string(config.algorithm),
                     config.envs, device.description(), to_string(config.precision),
                     paths.out.string()));
  const int64_t step_cap =
      run.env_steps > 0 ? run.env_steps
                        : (run.updates > 0 || run.seconds > 0 ? 0 : RunConfig::kDefaultEnvStepCap);
  const auto extra_json = [&](double wall) {
    nlohmann::json e = {{"wall_s", wall}};
    if (!solved_at.is_null()) e["solved"] = solved_at;
    return e.dump();
  };

  const auto start = Clock::now();
  const int64_t start_steps = trainer.env_steps();
  UpdateRecord last{};
  last.update = trainer.updates();
  last.env_steps = trainer.env_steps();
  last.recent = trainer.recent().total();
  bool stop_nonfinite = false;
  bool interrupted = false;
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
      break;
    }
    metrics << metrics_row(rec, wall, update_rate) << '\n';
    metrics.flush();
    BP_REQUIRE(metrics.good(), kRuntime,
               "writing " << metrics_path.string() << " failed (disk full?)");
    last = rec;
    const EpisodeTally& t = rec.recent;
    const double mean = t.episodes > 0 ? t.return_sum / t.episodes : 0.0;
    if (solved_at.is_null() && t.episodes >= RunConfig::kMinEpisodesForTarget &&
        mean >= run.target_return) {
      solved_at = {{"update", rec.update}, {"env_steps", rec.env_steps}, {"wall_s", wall}};
      stop_reason = "target";
    }
    double fraction = 0;
    if (step_cap > 0) {
      fraction =
          std::max(fraction, static_cast<double>(rec.env_steps) / static_cast<double>(step_cap));
    }
    if (run.updates > 0) {
      fraction =
          std::max(fraction, static_cast<double>(rec.update) / static_cast<double>(run.updates));
    }
    if (run.seconds > 0) fraction = std::max(fraction, wall / run.seconds);
    interrupted = cb.interrupted && cb.interrupted();
    const bool done = !solved_at.is_null() || fraction >= 1.0 || interrupted;
    if (cb.on_update) cb.on_update(RunProgress{rec, wall, rate, fraction, done});
    if (run.checkpoint_every > 0 && rec.update % run.checkpoint_every == 0 && !done) {
      trainer.save_checkpoint(paths.checkpoint.string(), extra_json(wall));
    }
    if (interrupted) stop_reason = "interrupted";
    if (done) break;
  }
  RunResult result;
  result.out_dir = paths.out.string();
  const double wall = wall_offset + std::chrono::duration<double>(Clock::now() - start).count();
  if (stop_nonfinite) {
    result.message = fmt::format(
        "batchpole train: stopped at update {}: a loss or gradient norm is not finite (NaN or "
        "infinity). The last good checkpoint is {}; try a smaller --lr.",
        last.update + 1, fs::exists(paths.checkpoint) ? paths.checkpoint.string() : "(none yet)");
    result.exit_code = 1;
    return result;
  }
  trainer.save_checkpoint(paths.checkpoint.string(), extra_json(wall));

  const EpisodeTally& t = last.recent;
  const double run_steps = static_cast<double>(trainer.env_steps() - start_steps);
  const double run_wall = std::chrono::duration<double>(Clock::now() - start).count();
  const nlohmann::json summary = {
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
      {"device", device.description()},
      {"threads", device.threads()},
      {"config", nlohmann::json::parse(config_to_json(config))},
      {"version", BATCHPOLE_VERSION}};
  result.summary_json = summary.dump(2);
  write_file_atomically(paths.out / "summary.json", result.summary_json + '\n');
  result.message = (fmt::format(
      "{} after {} updates, {} env steps, {:.1f} s ({:.3g}/s); mean return {:.1f}",
      solved_at.is_null() ? "stopped (" + stop_reason + ")" : "solved", trainer.updates(),
      trainer.env_steps(), wall, run_steps / std::max(run_wall, 1e-9),
      t.episodes > 0 ? t.return_sum / t.episodes : 0.0));
  result.exit_code = interrupted ? 130 : 0;
  return result;
}

}  // namespace batchpole
