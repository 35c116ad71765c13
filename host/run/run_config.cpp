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
  t.push_back(text("sweep",
                   "Sweep KEY=V1,V2,... (repeatable): a population of --agents seeds for every "
                   "point of the product",
                   FieldKind::kText, {}, &RunConfig::sweep));
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
  std::vector<std::string> given;
  for (const auto& [key, value] : keys) {
    if (const auto* f = find_field(train_config_fields(), key)) {
      f->assign(c, value);
      given.push_back(key);
    }
  }
  // PPO's recipe follows the batch the keys chose, for what they left to it.
  if (c.algorithm == Algorithm::kPpo && preset == keys.end()) c.apply_ppo_recipe(given);
  c.validate();
  return c;
}

namespace {

std::vector<std::string> split_on(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (const char ch : text) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::vector<SweepAxis> parse_sweep(const std::string& text) {
  std::vector<SweepAxis> axes;
  if (trim(text).empty()) return axes;
  std::size_t points = 1;
  for (const std::string& part : split_on(text, ';')) {
    const std::string item = trim(part);
    const auto eq = item.find('=');
    BP_CHECK_ARG(eq != std::string::npos && eq > 0 && eq + 1 < item.size(),
                 "--sweep '" << item << "': expected KEY=V1,V2,... (e.g. lr=1e-3,3e-3)");
    SweepAxis axis;
    axis.key = trim(item.substr(0, eq));
    for (char& ch : axis.key) {
      if (ch == '-') ch = '_';  // the flag's spelling works too
    }
    const auto* f = find_field(train_config_fields(), axis.key);
    BP_CHECK_ARG(f != nullptr, "--sweep: '" << axis.key << "' is not a training key");
    BP_CHECK_ARG(axis.key != "agents" && axis.key != "seed",
                 "--sweep: '" << axis.key << "' cannot be swept (a population's agents are its "
                              << "seeds: --agents N trains seeds seed .. seed + N - 1)");
    for (const auto& a : axes) {
      BP_CHECK_ARG(a.key != axis.key, "--sweep: '" << axis.key << "' is swept twice");
    }
    for (const std::string& v : split_on(item.substr(eq + 1), ',')) {
      try {
        axis.values.push_back(f->parse(trim(v)));
      } catch (const Error& e) {
        BP_CHECK_ARG(false, "--sweep " << axis.key << ": " << e.what());
      }
    }
    points *= axis.values.size();
    BP_CHECK_ARG(points <= 4096, "--sweep: more than 4096 points");
    axes.push_back(std::move(axis));
  }
  return axes;
}

std::vector<SweepPoint> sweep_points(const std::vector<SweepAxis>& axes) {
  std::vector<SweepPoint> points(1);
  for (const auto& a : axes) {
    std::vector<SweepPoint> next;
    for (const auto& p : points) {
      for (const auto& v : a.values) {
        SweepPoint q = p;
        q.values.emplace_back(a.key, v);
        next.push_back(std::move(q));
      }
    }
    points = std::move(next);
  }
  return points;
}

std::vector<SweepPoint> resolve_sweep(const RunKeys& keys, const DevicePlan& plan) {
  const auto it = keys.find("sweep");
  const std::vector<SweepAxis> axes =
      it != keys.end() ? parse_sweep(field_word(it->second)) : std::vector<SweepAxis>{};
  for (const auto& a : axes) {
    BP_CHECK_ARG(keys.count(a.key) == 0,
                 "--sweep " << a.key << " and --" << a.key << " both set " << a.key
                            << "; give it one way");
  }
  std::vector<SweepPoint> points = sweep_points(axes);
  for (auto& p : points) {
    RunKeys k = keys;
    for (const auto& [key, value] : p.values) k[key] = value;
    p.config = resolve_train_config(k, plan);
  }
  return points;
}

}  // namespace batchpole
