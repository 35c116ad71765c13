// A training run as `batchpole train` and Python's batchpole.train() make it: the run's own
// options (device, budgets, target, output directory, checkpoints), the training configuration
// resolved from keys over the algorithm's defaults, and the loop that trains, writes
// metrics.csv, checkpoint.bin and summary.json, resumes, and stops on the target, a budget, a
// non-finite loss or an interrupt.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "batchpole/core/fields.hpp"
#include "batchpole/rl/trainer.hpp"

namespace batchpole {

struct RunConfig {
  std::string device = "auto";
  int32_t threads = 0;
  int64_t env_steps = 0;  // budgets; 0 = none (then kDefaultEnvStepCap applies)
  int64_t updates = 0;
  double seconds = 0;
  double target_return = 475.0;
  std::string out;  // "" = runs/ALGO-TIMESTAMP
  int64_t checkpoint_every = 100;
  std::string resume;  // a checkpoint file or a run directory
  std::string preset;  // "" or "notebook"
  bool quiet = false;

  // Without any budget a run that never reaches the target stops here.
  static constexpr int64_t kDefaultEnvStepCap = 50'000'000;
  // The target counts once the recent window holds this many episodes.
  static constexpr int64_t kMinEpisodesForTarget = 100;
};

const std::vector<Field<RunConfig>>& run_config_fields();

// Keys and values for a run, from a --config file, flags (later ones win) or Python keywords:
// RunConfig's keys and TrainConfig's. Unknown keys are refused by name when resolved.
using RunKeys = std::map<std::string, FieldValue>;

// The keys of a JSON object (a --config file's text) as checked values.
RunKeys run_keys_from_json(const std::string& text, const std::string& what);
// The run options among the keys (the rest is left to resolve_train_config).
RunConfig resolve_run_config(const RunKeys& keys);
// The training configuration: the preset or the defaults of the keys' algorithm on a device
// with this plan, then every training key. Validated.
TrainConfig resolve_train_config(const RunKeys& keys, const DevicePlan& plan);
// Whether the keys set any training key (a resumed run refuses ones that differ).
bool has_train_keys(const RunKeys& keys);

// What the loop reports after each update.
struct RunProgress {
  const UpdateRecord& record;
  double wall_s;           // since the run began (a resumed run continues its clock)
  double env_steps_per_s;  // over the last half second or so
  double budget_fraction;  // of the tightest budget, 0 when there is none
  bool done;               // the last report of the run
};

struct RunCallbacks {
  std::function<void(const RunProgress&)> on_update;  // optional
  std::function<bool()> interrupted;                  // optional: polled after every update
  std::function<void(const std::string&)> message;    // optional: one-line notices
};

struct RunResult {
  int exit_code = 0;  // 0 done, 1 non-finite loss or gradient, 130 interrupted
  std::string out_dir;
  std::string summary_json;  // summary.json's text ("" when the run stopped on a bad loss)
  std::string message;       // how the run ended, one line
};

// Trains on `device` until the target, a budget or an interrupt, writing into run.out.
// train_keys_given: with run.resume, training keys must equal the checkpoint's.
RunResult run_training(Device& device, const RunConfig& run, const TrainConfig& train,
                       bool train_keys_given, const RunCallbacks& callbacks = {});

// The CSV columns of metrics.csv, and one row.
std::string metrics_header();
std::string metrics_row(const UpdateRecord& r, double wall_s, double steps_per_s);

}  // namespace batchpole
