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

class Comm;  // batchpole/run/comm.hpp

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
  // A sweep: "KEY=V1,V2,...", several joined by ';' (the flag --sweep is repeatable). Every
  // point of the cartesian product trains a population of `agents` agents; "" = none.
  std::string sweep;

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

// One point of a sweep: the values of the swept keys and the configuration they give.
struct SweepPoint {
  std::vector<std::pair<std::string, FieldValue>> values;
  TrainConfig config;
};
struct SweepAxis {
  std::string key;
  std::vector<FieldValue> values;
};
// The axes of a sweep's text ("KEY=V1,V2;KEY=..."): training keys other than agents and seed,
// each once, values checked by the key's field. Throws Error(kInvalidArgument).
std::vector<SweepAxis> parse_sweep(const std::string& text);
// The points of a sweep's axes, the cartesian product with the first key slowest (their
// configurations left to the caller); one point without values when there are no axes.
std::vector<SweepPoint> sweep_points(const std::vector<SweepAxis>& axes);
// The points of the keys' sweep, each resolved as resolve_train_config with its values.
std::vector<SweepPoint> resolve_sweep(const RunKeys& keys, const DevicePlan& plan);

// What the loop reports after each update (of every agent of a population: one report).
struct RunProgress {
  const UpdateRecord& record;  // the first active agent's (one agent: its own)
  double wall_s;               // since the run began (a resumed run continues its clock)
  double env_steps_per_s;      // over the last half second or so, all agents together
  double budget_fraction;      // of the tightest budget, 0 when there is none
  bool done;                   // the last report of the run
  // A population (agents > 1): how many agents there are, have solved and still train, the
  // env steps of all of them, and the mean over the agents of their recent mean returns.
  int64_t agents = 1;
  int64_t solved = 0;
  int64_t active = 1;
  int64_t env_steps = 0;
  double mean_return = 0;
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
//
// A population (agents > 1, or a sweep's points, each a population of its own, all stepped in
// turn) writes one metrics.csv row per agent and update; each agent stops stepping and
// updating once it reaches the target, and the budgets (env steps, updates) are each agent's.
// The run ends when every agent has stopped, on the wall-clock budget, or on an interrupt.
//
// With `comm` (train --distributed under mpirun, R ranks): the population's agents, all points
// together numbered as in metrics.csv, are cut into R contiguous ranges, rank r training the
// r-th (agent k keeps seed + k, so each trains exactly as in one process). The ranks update in
// lockstep; after every round rank 0 gathers the rounds' metrics rows in rank order (the order
// one process writes them) and writes metrics.csv, and at the end summary.json. Each rank
// checkpoints its own agents (checkpoint.rankR.bin). Needs at least R agents; refuses --resume.
// One agent is trained data-parallel instead (rl/data_parallel.hpp): parts = R, rank r holding
// part r; every rank computes the same records, rank 0 writes metrics.csv, summary.json and the
// one checkpoint (every rank's envs gathered into it), all as one process with --parts R
// writes them; it resumes under the same R.
RunResult run_training(Device& device, const RunConfig& run, const TrainConfig& train,
                       bool train_keys_given, const RunCallbacks& callbacks = {});
RunResult run_training(Device& device, const RunConfig& run, const std::vector<SweepPoint>& points,
                       bool train_keys_given, const RunCallbacks& callbacks = {},
                       Comm* comm = nullptr);

// The CSV columns of metrics.csv, and one row: the update's columns, then the agent (its
// index in the run), its seed and the values of the swept keys.
std::string metrics_header(const std::vector<std::string>& swept = {});
std::string metrics_row(const UpdateRecord& r, double wall_s, double steps_per_s, uint64_t seed = 0,
                        int64_t agent = 0, const std::vector<std::string>& swept_values = {});

}  // namespace batchpole
