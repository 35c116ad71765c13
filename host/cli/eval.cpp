// `batchpole eval`: returns of a checkpoint's policy over whole episodes.
#include <fmt/format.h>

#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "batchpole/run/evaluate.hpp"
#include "cli_fields.hpp"
#include "commands.hpp"

namespace batchpole::cli {

namespace {

struct EvalFlags {
  std::string checkpoint;
  EvalOptions options;
  std::string device = "auto";
  int threads = 0;
  bool json = false;
  FlagTexts numbers;  // the flags of eval_fields()
};

std::vector<Field<EvalFlags>> eval_fields() {
  std::vector<Field<EvalFlags>> t;
  auto episodes =
      int_field<EvalOptions>("episodes", "Episodes (played in parallel)", 1,
                             std::numeric_limits<int32_t>::max(), &EvalOptions::episodes);
  auto seed = seed_field<EvalOptions>("Seed of start states and sampling", &EvalOptions::seed);
  for (const auto& f : {episodes, seed}) {
    Field<EvalFlags> g;
    static_cast<FieldSpec&>(g) = f;
    g.get = [f](const EvalFlags& e) { return f.get(e.options); };
    g.set = [f](EvalFlags& e, const FieldValue& v) { f.set(e.options, v); };
    t.push_back(g);
  }
  t.push_back(threads_field<EvalFlags>("CPU threads (0 = all)", &EvalFlags::threads));
  return t;
}

void run_eval_command(const EvalFlags& f) {
  std::error_code ec;
  BP_CHECK_ARG(!std::filesystem::is_directory(f.checkpoint, ec),
               "--checkpoint " << f.checkpoint << " is a directory; pass its checkpoint.bin");
  DeviceOptions o;
  o.device = DeviceRequest::parse(f.device);
  o.threads = f.threads;
  const auto device = make_device(o);
  const EvalResult r = evaluate(*device, f.checkpoint, f.options);
  if (f.json) {
    const nlohmann::json j = {{"checkpoint", f.checkpoint},
                              {"episodes", r.episodes},
                              {"greedy", r.greedy},
                              {"mean_return", r.mean_return},
                              {"std_return", r.std_return},
                              {"min_return", r.min_return},
                              {"max_return", r.max_return},
                              {"device", device->description()},
                              {"algo", r.algo}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print(
      "{} episodes ({} policy, {}): mean return {:.2f}, std {:.2f}, min {:.0f}, max {:.0f}\n",
      r.episodes, r.greedy ? "greedy" : "sampled", device->description(), r.mean_return,
      r.std_return, r.min_return, r.max_return);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  auto* ev = app.add_subcommand("eval", "Evaluate a checkpoint: returns over whole episodes");
  ev->add_option("--checkpoint", f->checkpoint, "checkpoint.bin of a training run")->required();
  ev->add_option("--device", f->device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "gpu", "auto"}))
      ->capture_default_str();
  ev->add_option("--agent", f->options.agent,
                 "A population's checkpoint: the agent to evaluate (its index in the run's group)")
      ->capture_default_str();
  ev->add_flag("--greedy", f->options.greedy, "Take the most probable action instead of sampling");
  add_field_flags(*ev, eval_fields(), f->numbers, f.get());
  ev->add_flag("--json", f->json, "Print JSON (key mean_return)");
  ev->callback([f, ev] {
    assign_field_flags(*ev, eval_fields(), f->numbers, *f);
    run_eval_command(*f);
  });
}

}  // namespace batchpole::cli
