// The live progress line of `batchpole train`: rewritten in place on a terminal, one line every
// few seconds otherwise (logs).
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "batchpole/run/train_run.hpp"

namespace batchpole::cli {

// 1234567 -> "1.23M".
inline std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

class Progress {
 public:
  void show(const RunProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!p.done && now - last_ < std::chrono::milliseconds(tty_ ? 250 : 5000)) return;
    last_ = now;
    const UpdateRecord& r = p.record;
    const EpisodeTally& t = r.recent;
    const double n = std::max(t.episodes, 1.0);
    std::string eta = "-";
    if (p.budget_fraction > 0.01 && p.budget_fraction < 1.0) {
      eta = fmt::format("{:.0f}s", p.wall_s * (1.0 - p.budget_fraction) / p.budget_fraction);
    }
    const std::string line =
        p.agents > 1
            ? fmt::format(
                  "update {:>6}  steps {:>8}  {:>7}/s  solved {}/{} ({} training)  "
                  "return {:6.1f} (mean of agents)  {:6.1f}s  left {}",
                  r.update, human(static_cast<double>(p.env_steps)), human(p.env_steps_per_s),
                  p.solved, p.agents, p.active, p.mean_return, p.wall_s, eta)
            : fmt::format(
                  "update {:>6}  steps {:>8}  {:>7}/s  return {:6.1f} (min {:5.0f} max {:5.0f})  "
                  "length {:6.1f}  loss {:+.3f}/{:.3f}  entropy {:.3f}  {:6.1f}s  left {}",
                  r.update, human(static_cast<double>(r.env_steps)), human(p.env_steps_per_s),
                  t.return_sum / n, t.episodes > 0 ? t.return_min : 0.0,
                  t.episodes > 0 ? t.return_max : 0.0, t.length_sum / n, r.loss.policy_loss,
                  r.value_loss, r.loss.entropy, p.wall_s, eta);
    if (tty_) {
      fmt::print(stderr, "\r{}\033[K", line);
    } else {
      fmt::print(stderr, "{}\n", line);
    }
    shown_ = true;
  }
  void done() const {
    if (tty_ && shown_) fmt::print(stderr, "\n");
  }

 private:
  bool tty_ = isatty(STDERR_FILENO) != 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_ =
      std::chrono::steady_clock::now() - std::chrono::hours(1);
};

}  // namespace batchpole::cli
