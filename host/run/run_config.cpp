// The run options' field table, and keys resolved into a run and a training configuration.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "../io/json_fields.hpp"
#include "batchpole/run/train_run.hpp"

namespace batchpole {

namespace {

using F = Field<RunConfig>;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

template <class T>
F integer(std::string key, std::string help, int64_t lo, int64_t hi, T RunConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kInt;
  f.help = std::move(help);
  f.int_min = lo;
  f.int_max = hi;
  f.get = [member](const RunConfig& c) { return FieldValue(static_cast<int64_t>(c.*member)); };
  f.set = [member](RunConfig& c, const FieldValue& v) { c.*member = static_cast<T>(field_int(v)); };
  return f;
}

F real(std::string key, std::string help, double lo, double hi, double RunConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = FieldKind::kDouble;
  f.help = std::move(help);
  f.real_min = lo;
  f.real_max = hi;
  f.get = [member](const RunConfig& c) { return FieldValue(c.*member); };
  f.set = [member](RunConfig& c, const FieldValue& v) { c.*member = field_real(v); };
  return f;
}

F text(std::string key, std::string help, FieldKind kind, std::vector<std::string> choices,
       std::string RunConfig::*member) {
  F f;
  f.key = std::move(key);
  f.kind = kind;
  f.help = std::move(help);
  f.choices = std::move(choices);
  f.get = [member](const RunConfig& c) { return FieldValue(c.*member); };
  f.set = [member](RunConfig& c, const FieldValue& v) { c.*member = field_word(v); };
  return f;
}

std::vector<F> make_fields() {
  std::vector<F> t;
  t.push_back(text("device", "cpu, cuda or auto (the GPU when one is usable)", FieldKind::kChoice,
                   {"cpu", "cuda", "gpu", "auto"}, &RunConfig::device));
  t.push_back(integer("threads", "CPU threads (0 = all)", 0, kMaxCpuThreads, &RunConfig::threads));
  t.push_back(integer("env_steps", "Budget: environment steps (0 = none)", 0, kInt64Max,
                      &RunConfig::env_steps));
  t.push_back(integer("updates", "Budget: updates (0 = none)", 0, kInt64Max, &RunConfig::updates));
  t.push_back(
      real("seconds", "Budget: wall-clock seconds (0 = none)", 0, kInf, &RunConfig::seconds));
  t.push_back(real("target_return",
                   "Stop when the mean return of the last >= 100 finished episodes reaches this",
                   -kInf, kInf, &RunConfig::target_return));
  t.push_back(text("out", "Output directory (default runs/ALGO-TIMESTAMP)", FieldKind::kText, {},
                   &RunConfig::out));
  t.push_back(integer("checkpoint_every", "Updates between checkpoints (0 = only at the end)", 0,
                      kInt64Max, &RunConfig::checkpoint_every));
  t.push_back(text("resume", "Continue from a checkpoint file or run directory", FieldKind::kText,
                   {}, &RunConfig::resume));
  t.push_back(text("preset",
                   "notebook: the notebook's algorithm settings (one env, whole "
                   "episodes, reward 0 on the last step)",
                   FieldKind::kChoice, {"notebook"}, &RunConfig::preset));
  {
    F f;
    f.key = "quiet";
    f.kind = FieldKind::kBool;
    f.help = "No progress display";
    f.short_flag = "-q";
    f.get = [](const RunConfig& c) { return FieldValue(c.quiet); };
    f.set = [](RunConfig& c, const FieldValue& v) { c.quiet = field_bool(v); };
    t.push_back(f);
  }
  return t;
}

}  // namespace

const std::vector<Field<RunConfig>>& run_config_fields() {
  static const std::vector<Field<RunConfig>> fields = make_fields();
  return fields;
}

RunKeys run_keys_from_json(const std::string& text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    BP_CHECK_ARG(false, what << " is not valid JSON: " << e.what());
  }
  BP_CHECK_ARG(j.is_object(), what << " must hold a JSON object");
  RunKeys keys;
  for (const auto& [key, value] : j.items()) {
    const FieldSpec* spec = find_field(run_config_fields(), key);
    if (spec == nullptr) spec = find_field(train_config_fields(), key);
    BP_CHECK_ARG(spec != nullptr, what << ": unknown configuration key '" << key << "'");
    try {
      keys[key] = field_from_json(*spec, value);
    } catch (const Error& e) {
      BP_CHECK_ARG(false, what << ": " << e.what());
    }
  }
  return keys;
}

RunConfig resolve_run_config(const RunKeys& keys) {
  RunConfig run;
  for (const auto& [key, value] : keys) {
    if (const auto* f = find_field(run_config_fields(), key)) f->assign(run, value);
  }
  return run;
}

bool has_train_keys(const RunKeys& keys) {
  for (const auto& [key, value] : keys) {
    if (find_field(train_config_fields(), key) != nullptr) return true;
  }
  return false;
}

TrainConfig resolve_train_config(const RunKeys& keys, const DevicePlan& plan) {
  for (const auto& [key, value] : keys) {
    BP_CHECK_ARG(find_field(run_config_fields(), key) != nullptr ||
                     find_field(train_config_fields(), key) != nullptr,
                 "unknown configuration key '" << key << "'");
  }
  const auto algo_key = keys.find("algo");
  const Algorithm algo =
      algo_key != keys.end() ? parse_algorithm(field_word(algo_key->second)) : Algorithm::kA2C;
  const auto preset = keys.find("preset");
  TrainConfig c = preset != keys.end() && field_word(preset->second) == "notebook"
                      ? TrainConfig::notebook(algo)
                      : TrainConfig::defaults(algo, plan);
  for (const auto& [key, value] : keys) {
    if (const auto* f = find_field(train_config_fields(), key)) f->assign(c, value);
  }
  c.validate();
  return c;
}

}  // namespace batchpole
