// `batchpole compare`: the same configuration on two devices from the same seed, side by side
// (batchpole/run/parity.hpp does the comparing; this file reports). The two devices are the
// CPU and the GPU; without a GPU, a 1-thread CPU device and a multi-threaded one, so that the
// command still checks what it can (and exits 3 to say so).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "batchpole/run/parity.hpp"
#include "cli_fields.hpp"
#include "commands.hpp"

namespace batchpole::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Exit status beyond main()'s: every check held, but there was no GPU to compare against.
constexpr int kExitNoGpu = 3;

double abs_diff(double a, double b) {
  const double d = std::abs(b - a);
  return std::isnan(d) ? INFINITY : d;
}

struct CompareOptions {
  int64_t envs = 4096;
  int32_t steps = 1000;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false;
  std::string metrics_out;
  bool skip_training = false;
};

// One side of the comparison: a device and a short label for tables and file names.
struct Side {
  std::string label;
  std::unique_ptr<Device> device;
};

std::unique_ptr<Device> make_side_device(DeviceRequest::Choice choice, int threads) {
  DeviceOptions o;
  o.device.choice = choice;
  o.threads = threads;
  return make_device(o);
}

std::string write_training_csv(const fs::path& dir, const TrainingComparison& c,
                               const std::string& label, const std::vector<TrainPoint>& points) {
  const fs::path path =
      dir / fmt::format("compare_{}_{}.csv", to_string(c.config.algorithm), label);
  std::ofstream out(path, std::ios::trunc);
  out << "update,env_steps,mean_return,policy_loss,value_loss,entropy,grad_norm\n";
  for (const TrainPoint& p : points) {
    out << fmt::format("{},{},{:.8g},{:.8g},{:.8g},{:.8g},{:.8g}\n", p.update, p.env_steps,
                       p.mean_return, p.policy_loss, p.value_loss, p.entropy, p.grad_norm);
  }
  BP_REQUIRE(out.good(), kRuntime, "cannot write " << path.string());
  return path.string();
}

// ---- the report -------------------------------------------------------------------------------

json to_json(const TrainPoint& p) {
  return {{"update", p.update},           {"env_steps", p.env_steps},
          {"mean_return", p.mean_return}, {"policy_loss", p.policy_loss},
          {"value_loss", p.value_loss},   {"entropy", p.entropy},
          {"grad_norm", p.grad_norm}};
}

json to_json(const EnvParity& r) {
  json j = {{"equal", r.equal()},
            {"values_compared", r.values_compared},
            {"episodes_ended", r.episodes_ended},
            {"mismatches", r.mismatches},
            {"first_mismatch", nullptr}};
  if (r.first) {
    j["first_mismatch"] = {{"step", r.first->step},
                           {"env", r.first->env},
                           {"field", r.first->field},
                           {"a", r.first->a_value},
                           {"b", r.first->b_value}};
  }
  return j;
}

json to_json(const NetworkParity& p) {
  json checks = json::array();
  for (const NetworkCheck& c : p.checks) {
    checks.push_back({{"name", c.name},
                      {"max_abs", c.diff.max_abs},
                      {"max_rel", c.diff.max_rel},
                      {"measure", c.measure},
                      {"tolerance", c.tolerance},
                      {"rule", c.rule},
                      {"within", c.within}});
  }
  return {{"model", p.model}, {"parameters", p.parameters}, {"rows", p.rows},
          {"lr", p.lr},       {"within", p.within()},       {"checks", checks}};
}

json to_json(const TrainingComparison& c, const std::string& label_a, const std::string& label_b) {
  json per_update = json::array();
  for (std::size_t i = 0; i < c.a.size(); ++i) {
    per_update.push_back({{label_a, to_json(c.a[i])}, {label_b, to_json(c.b[i])}});
  }
  json first = nullptr;
  if (c.first_divergence) {
    const auto i = static_cast<std::size_t>(*c.first_divergence);
    first = {{"update", c.a[i].update},
             {"policy_loss_diff", abs_diff(c.a[i].policy_loss, c.b[i].policy_loss)},
             {"mean_return_diff", abs_diff(c.a[i].mean_return, c.b[i].mean_return)}};
  }
  return {{"algo", to_string(c.config.algorithm)},
          {"envs", c.config.envs},
          {"updates", c.updates},
          {"first_divergence", first},
          {"max_policy_loss_diff", c.max_policy_loss_diff},
          {"max_mean_return_diff", c.max_mean_return_diff},
          {"final_mean_return",
           {{label_a, c.a.empty() ? 0.0 : c.a.back().mean_return},
            {label_b, c.b.empty() ? 0.0 : c.b.back().mean_return}}},
          {"per_update", per_update}};
}

void print_env(const CompareOptions& o, const std::vector<EnvParity>& env) {
  fmt::print("\nenvironment parity: {} envs x {} steps, random actions, bit for bit\n", o.envs,
             o.steps);
  fmt::print("  {:<9} {:>15} {:>14} {:>10}  {}\n", "precision", "values compared", "episodes ended",
             "mismatches", "result");
  for (const EnvParity& r : env) {
    fmt::print("  {:<9} {:>15} {:>14} {:>10}  {}\n", to_string(r.precision), r.values_compared,
               r.episodes_ended, r.mismatches, r.equal() ? "equal" : "DIFFERENT");
  }
  for (const EnvParity& r : env) {
    if (!r.first) continue;
    const Mismatch& m = *r.first;
    fmt::print("  {} first mismatch: step {}, env {}, {}: {} vs {}\n", to_string(r.precision),
               m.step, m.env, m.field, m.a, m.b);
  }
}

void print_network(const NetworkParity& p) {
  fmt::print(
      "\nnetwork parity: A2C actor-critic ({} parameters), {} random rows, one Adam step "
      "(lr {:g})\n",
      p.parameters, p.rows, p.lr);
  fmt::print("  {:<31} {:>9} {:>9}  {:<33} {:>9} {:>9}  {}\n", "quantity", "max abs", "max rel",
             "checked", "measure", "tolerance", "ok");
  for (const NetworkCheck& c : p.checks) {
    fmt::print("  {:<31} {:>9.2e} {:>9.2e}  {:<33} {:>9.2e} {:>9.2e}  {}\n", c.name, c.diff.max_abs,
               c.diff.max_rel, c.rule, c.measure, c.tolerance, c.within ? "yes" : "NO");
  }
}

void print_training(const std::vector<TrainingComparison>& runs, const std::string& label_a,
                    const std::string& label_b) {
  fmt::print(
      "\ntraining, same seed, side by side (per-update values: --json, --metrics-out); "
      "diverged: |b-a| > {:g}(1+|a|)\n",
      ParityTolerance::kTraining);
  fmt::print("  {:<9} {:>5} {:>7}  {:<34} {:>12} {:>12}  {}\n", "algo", "envs", "updates",
             "first divergence", "max |d loss|", "max |d ret|",
             fmt::format("final return {} / {}", label_a, label_b));
  for (const TrainingComparison& c : runs) {
    std::string first = "none";
    if (c.first_divergence) {
      const auto i = static_cast<std::size_t>(*c.first_divergence);
      first = fmt::format("update {}: loss {:.2e}, return {:.3g}", c.a[i].update,
                          abs_diff(c.a[i].policy_loss, c.b[i].policy_loss),
                          abs_diff(c.a[i].mean_return, c.b[i].mean_return));
    }
    fmt::print("  {:<9} {:>5} {:>7}  {:<34} {:>12.3e} {:>12.3g}  {:.2f} / {:.2f}\n",
               to_string(c.config.algorithm), c.config.envs, c.updates, first,
               c.max_policy_loss_diff, c.max_mean_return_diff, c.a.back().mean_return,
               c.b.back().mean_return);
  }
}

int run_compare(const CompareOptions& o) {
  if (!o.metrics_out.empty()) {
    std::error_code ec;
    fs::create_directories(o.metrics_out, ec);
    BP_CHECK_ARG(!ec && fs::is_directory(o.metrics_out),
                 "--metrics-out " << o.metrics_out << " cannot be created: "
                                  << (ec ? ec.message() : "not a directory"));
  }

  // The two sides: the CPU against the GPU, or without one, 1 CPU thread against --threads.
  const bool gpu = cuda_device_count() > 0;
  Side a;
  Side b;
  std::string no_gpu_reason;
  if (gpu) {
    a = {"cpu", make_side_device(DeviceRequest::Choice::kCpu, o.threads)};
    b = {"gpu", make_side_device(DeviceRequest::Choice::kCuda, 0)};
  } else {
    no_gpu_reason = cuda_status().reason;
    a = {"cpu-serial", make_side_device(DeviceRequest::Choice::kCpu, 1)};
    b = {"cpu-parallel", make_side_device(DeviceRequest::Choice::kCpu, o.threads)};
    fmt::print(stderr,
               "batchpole compare: no GPU ({}): comparing {} with {} instead; exit status {} "
               "when every check holds\n",
               no_gpu_reason, a.device->description(), b.device->description(), kExitNoGpu);
  }
  Device& ba = *a.device;
  Device& bb = *b.device;

  std::vector<EnvParity> env;
  for (const Precision p : {Precision::kF32, Precision::kF64}) {
    env.push_back(compare_env(ba, bb, o.envs, o.steps, o.seed, p));
  }
  const NetworkParity net = compare_network(ba, bb, o.seed);

  std::vector<TrainingComparison> training;
  json csv_files = json::array();
  if (!o.skip_training) {
    struct Size {
      Algorithm algo;
      int64_t envs, updates;
    };
    for (const Size s : {Size{Algorithm::kReinforce, 16, 10}, Size{Algorithm::kBaseline, 16, 10},
                         Size{Algorithm::kA2C, 64, 50}}) {
      training.push_back(compare_training(ba, bb, s.algo, s.envs, s.updates, o.seed));
      if (!o.metrics_out.empty()) {
        csv_files.push_back(
            write_training_csv(o.metrics_out, training.back(), a.label, training.back().a));
        csv_files.push_back(
            write_training_csv(o.metrics_out, training.back(), b.label, training.back().b));
      }
    }
  }

  const bool env_equal =
      std::all_of(env.begin(), env.end(), [](const EnvParity& r) { return r.equal(); });
  const bool passed = env_equal && net.within();
  const int code = !passed ? 1 : (gpu ? 0 : kExitNoGpu);

  if (o.json) {
    json j;
    j["command"] = "compare";
    j["sides"] = {{a.label, {{"device", ba.description()}, {"threads", ba.threads()}}},
                  {b.label, {{"device", bb.description()}, {"threads", bb.threads()}}}};
    j["order"] = {a.label, b.label};  // "a" and "b" in the differences below
    j["gpu"] = {{"available", gpu}, {"reason", gpu ? nullptr : json(no_gpu_reason)}};
    j["seed"] = o.seed;
    j["env"] = {{"envs", o.envs}, {"steps", o.steps}};
    for (const EnvParity& r : env) j["env"][to_string(r.precision)] = to_json(r);
    j["network"] = to_json(net);
    j["training"] = json::array();
    for (const auto& t : training) j["training"].push_back(to_json(t, a.label, b.label));
    j["metrics_files"] = csv_files;
    j["env_parity"] = env_equal;
    j["network_within_tolerance"] = net.within();
    j["passed"] = passed;
    j["exit_code"] = code;
    j["version"] = BATCHPOLE_VERSION;
    fmt::print("{}\n", j.dump(2));
    return code;
  }
  fmt::print("batchpole compare, seed {}: a = {} [{}], b = {} [{}]\n", o.seed, a.label,
             ba.description(), b.label, bb.description());
  if (!gpu) {
    fmt::print("no GPU ({}): two CPU configurations stand in for CPU and GPU\n", no_gpu_reason);
  }
  print_env(o, env);
  print_network(net);
  if (!training.empty()) print_training(training, a.label, b.label);
  for (const auto& f : csv_files) fmt::print("wrote {}\n", f.get<std::string>());
  fmt::print("\nenvironment parity {}; network {}; exit status {}{}\n",
             env_equal ? "holds" : "FAILS", net.within() ? "within tolerance" : "OUTSIDE tolerance",
             code, code == kExitNoGpu ? " (no GPU)" : "");
  return code;
}

std::vector<Field<CompareOptions>> compare_fields() {
  using O = CompareOptions;
  return {int_field<O>("envs", "Environments of the parity run", 1,
                       std::numeric_limits<int32_t>::max(), &O::envs),
          int_field<O>("steps", "Steps of the parity run", 1, std::numeric_limits<int32_t>::max(),
                       &O::steps),
          seed_field<O>("Seed of environments, networks and training", &O::seed),
          threads_field<O>(
              "CPU threads of the CPU side (without a GPU: of the multi-threaded side); 0 = all",
              &O::threads)};
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd =
      app.add_subcommand("compare",
                         "Run the same configuration on the CPU and the GPU from the same seed and "
                         "compare: environment bits, network outputs, training curves");
  cmd->footer(
      "Exit status: 0 when the environments agree bit for bit and the network differences are "
      "within tolerance, 1 when not. Without a GPU, a 1-thread CPU device is compared with a "
      "--threads one instead and the exit status is 3 when every check holds.");
  auto numbers = std::make_shared<FlagTexts>();
  add_field_flags(*cmd, compare_fields(), *numbers, o.get());
  cmd->add_flag("--json", o->json, "Print JSON (keys env_parity, network_within_tolerance)");
  cmd->add_option("--metrics-out", o->metrics_out,
                  "Directory for per-update CSVs of both sides (compare_ALGO_SIDE.csv)");
  cmd->add_flag("--skip-training", o->skip_training, "Leave out the short training runs");
  cmd->callback([o, numbers, cmd] {
    assign_field_flags(*cmd, compare_fields(), *numbers, *o);
    const int code = run_compare(*o);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace batchpole::cli
