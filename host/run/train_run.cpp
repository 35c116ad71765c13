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
#include "batchpole/run/comm.hpp"
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

// What a checkpoint keeps beside the trainer (extra_json below), checked: the checksum vouches
// for the bytes, not for who wrote them. `agents`: the agents its configuration has.
nlohmann::json read_extra(const std::string& text, const fs::path& from, int64_t agents) {
  const auto extra = nlohmann::json::parse(text, nullptr, false);
  const auto number = [](const nlohmann::json& j) {
    return j.is_number() && std::isfinite(j.get<double>()) && j.get<double>() >= 0;
  };
  const auto agent_ok = [&](const nlohmann::json& a) {
    if (!a.is_object() || !a.contains("stop") || !a["stop"].is_string()) return false;
    const std::string stop = a["stop"].get<std::string>();
    if (stop != "" && stop != "target" && stop != "budget" && stop != "non-finite" &&
        stop != "interrupted") {
      return false;
    }
    const nlohmann::json solved = a.value("solved", nlohmann::json());
    return solved.is_null() ||
           (solved.is_object() && number(solved.value("update", nlohmann::json())) &&
            number(solved.value("env_steps", nlohmann::json())) &&
            number(solved.value("wall_s", nlohmann::json())));
  };
  const bool ok = extra.is_object() && number(extra.value("wall_s", nlohmann::json())) &&
                  extra.value("sweep", nlohmann::json()).is_string() &&
                  extra.value("groups", nlohmann::json()).is_number_unsigned() &&
                  extra["groups"].get<uint64_t>() >= 1 && extra["groups"].get<uint64_t>() <= 4096 &&
                  extra.value("agents", nlohmann::json()).is_array() &&
                  static_cast<int64_t>(extra["agents"].size()) == agents &&
                  std::all_of(extra["agents"].begin(), extra["agents"].end(), agent_ok);
  BP_CHECK_ARG(ok, "checkpoint " << from.string() << " holds damaged run information: " << text);
  return extra;
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

std::string metrics_header(const std::vector<std::string>& swept) {
  std::string h =
      "update,env_steps,wall_s,episodes,recent_episodes,mean_return,min_return,max_return,"
      "mean_length,min_length,max_length,policy_loss,value_loss,entropy,grad_norm,"
      "value_grad_norm,steps_per_s,approx_kl,clip_fraction,explained_variance,epochs_run,agent,"
      "seed";
  for (const auto& key : swept) h += "," + key;
  return h;
}

std::string metrics_row(const UpdateRecord& r, double wall_s, double steps_per_s, uint64_t seed,
                        int64_t agent, const std::vector<std::string>& swept_values) {
  const EpisodeTally& t = r.recent;
  const double n = std::max(t.episodes, 1.0);
  const bool any = t.episodes > 0;
  std::string row = fmt::format(
      "{},{},{:.4f},{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.8g},{:.8g},"
      "{:.8g},{:.8g},{:.8g},{:.6g},{:.6g},{:.6g},{:.6g},{},{},{}",
      r.update, r.env_steps, wall_s, r.episodes, t.episodes, any ? t.return_sum / n : 0.0,
      any ? t.return_min : 0.0, any ? t.return_max : 0.0, any ? t.length_sum / n : 0.0,
      any ? t.length_min : 0.0, any ? t.length_max : 0.0, r.loss.policy_loss, r.value_loss,
      r.loss.entropy, r.loss.grad_norm, r.loss.value_grad_norm, steps_per_s, r.loss.approx_kl,
      r.loss.clip_fraction, r.explained_variance, r.epochs, agent, seed);
  for (const auto& v : swept_values) row += "," + v;
  return row;
}

namespace {

double mean_return(const EpisodeTally& t) {
  return t.episodes > 0 ? t.return_sum / t.episodes : 0.0;
}

// One agent of the run: how it ended, and its last record.
struct AgentRun {
  nlohmann::json solved;  // {update, env_steps, wall_s} once it reached the target
  std::string stop;       // "" while training; "target", "budget", "non-finite"
  UpdateRecord last;
  bool trained = false;  // `last` holds a record
};

// A population of one sweep point, its agents numbered from `first_agent` in the run.
struct Group {
  SweepPoint point;
  std::vector<std::string> values;  // the swept values, as metrics.csv writes them
  std::unique_ptr<Trainer> trainer;
  std::vector<AgentRun> agents;
  int64_t first_agent = 0;
  fs::path checkpoint;
  std::size_t index = 0;  // of the point, in the run's sweep
};

fs::path group_checkpoint(const fs::path& first, std::size_t g) {
  if (g == 0) return first;
  return first.parent_path() /
         fmt::format("{}-{}{}", first.stem().string(), g, first.extension().string());
}

// What a checkpoint keeps beside the trainer: the run's clock, its sweep and how each agent
// ended.
// ranks > 1: the checkpoint of rank `rank`'s share of a population over ranks (which a resume
// refuses by these keys).
std::string extra_json(const Group& g, std::size_t groups, const std::string& sweep, double wall,
                       int ranks, int rank) {
  nlohmann::json agents = nlohmann::json::array();
  for (const AgentRun& a : g.agents) agents.push_back({{"solved", a.solved}, {"stop", a.stop}});
  nlohmann::json extra{{"wall_s", wall}, {"sweep", sweep}, {"groups", groups}, {"agents", agents}};
  if (ranks > 1) {
    extra["ranks"] = ranks;
    extra["rank"] = rank;
  }
  return extra.dump();
}

nlohmann::json spread(std::vector<double> v) {
  if (v.empty()) return {{"median", nullptr}, {"min", nullptr}, {"max", nullptr}};
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  const double median = n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {{"median", median}, {"min", v.front()}, {"max", v.back()}};
}

// The aggregate of some agents, from their entries in summary.json's "agents" list (which a
// distributed run gathers from its ranks): how many solved, and the spread of what they took.
nlohmann::json aggregate(const std::vector<const nlohmann::json*>& runs) {
  std::vector<double> steps, wall, updates, finals;
  int64_t solved = 0;
  for (const nlohmann::json* a : runs) {
    if ((*a)["solved"].get<bool>()) {
      ++solved;
      steps.push_back((*a)["env_steps_to_solve"].get<double>());
      wall.push_back((*a)["wall_s_to_solve"].get<double>());
      updates.push_back((*a)["updates_to_solve"].get<double>());
    }
    finals.push_back((*a)["final_mean_return"].get<double>());
  }
  return {{"agents", runs.size()},
          {"solved", solved},
          {"env_steps_to_solve", spread(steps)},
          {"wall_s_to_solve", spread(wall)},
          {"updates_to_solve", spread(updates)},
          {"final_mean_return", spread(finals)}};
}

}  // namespace

RunResult run_training(Device& device, const RunConfig& run, const TrainConfig& requested,
                       bool train_keys_given, const RunCallbacks& cb) {
  return run_training(device, run, std::vector<SweepPoint>{SweepPoint{{}, requested}},
                      train_keys_given, cb);
}

RunResult run_training(Device& device, const RunConfig& run,
                       const std::vector<SweepPoint>& requested, bool train_keys_given,
                       const RunCallbacks& cb, Comm* comm) {
  BP_CHECK_ARG(!requested.empty(), "run_training: nothing to train");
  // A distributed run: this rank's share of the agents, and whether it writes the run's files.
  const int rank = comm != nullptr ? comm->rank() : 0;
  const int ranks = comm != nullptr ? comm->size() : 1;
  const bool writer = rank == 0;
  const auto notice = [&](const std::string& m) {
    if (cb.message && !m.empty()) cb.message(m);
  };
  RunPaths paths = run_paths(run, requested.front().config);
  const bool resuming = !paths.resume_from.empty();
  int64_t total_agents = 0;
  for (const SweepPoint& p : requested) total_agents += p.config.agents;
  // One agent over the ranks is data-parallel: rank r holds part r of its envs
  // (rl/data_parallel.hpp), every rank the same agent.
  const bool data_parallel = comm != nullptr && total_agents == 1;
  if (comm != nullptr) {
    BP_CHECK_ARG(!resuming || data_parallel,
                 "--distributed resumes data-parallel runs (one agent) only in this version; a "
                 "population trained over ranks cannot be resumed: train afresh");
    BP_CHECK_ARG(data_parallel || total_agents >= ranks,
                 "--distributed: " << total_agents << " agents over " << ranks
                                   << " ranks leaves a rank without one; give --agents >= " << ranks
                                   << " (or one agent, trained data-parallel)");
    const int32_t parts = requested.front().config.parts;
    BP_CHECK_ARG(!data_parallel || parts == 1 || parts == ranks,
                 "--distributed: --parts " << parts << " under " << ranks
                                           << " ranks; each rank holds one part (leave "
                                              "--parts out, or give "
                                           << ranks << ")");
    BP_CHECK_ARG(data_parallel || parts == 1,
                 "--distributed: a population's agents are split over the ranks; --parts is "
                 "for one agent");
    // Each rank checkpoints its own agents; data-parallel ranks write one checkpoint together.
    if (!data_parallel) paths.checkpoint = paths.out / fmt::format("checkpoint.rank{}.bin", rank);
  }

  std::vector<SweepPoint> points = requested;
  if (data_parallel && !resuming) {  // (resumed: the checkpoint's parts, checked below)
    points.front().config.parts = ranks;
    points.front().config.validate();  // what data-parallel training covers, refused by name
  }
  std::string sweep = run.sweep;
  std::vector<nlohmann::json> saved(points.size());  // each group's checkpoint information
  double wall_offset = 0;
  if (resuming) {
    std::error_code ec;
    if (!fs::exists(paths.resume_from, ec)) {
      // A run killed before its first checkpoint leaves its metrics and nothing to continue.
      const bool started = fs::exists(resume_dir(paths) / "metrics.csv", ec);
      BP_CHECK_ARG(!fs::exists(resume_dir(paths) / "checkpoint.rank0.bin", ec),
                   "--resume: " << resume_dir(paths).string()
                                << " holds a population trained over ranks (--distributed, "
                                   "checkpoint.rankR.bin), which cannot be resumed in this "
                                   "version; its files stay as they are (train afresh with "
                                   "another --out)");
      BP_CHECK_ARG(false, "--resume: no checkpoint at "
                              << paths.resume_from.string()
                              << (started ? "; the run there stopped before its first checkpoint "
                                            "and cannot be continued. Train afresh with --out " +
                                                resume_dir(paths).string() +
                                                " (without --resume), which takes the directory "
                                                "over"
                                          : std::string()));
    }
    std::string extra_text;
    const TrainConfig first =
        Trainer::read_checkpoint_config(paths.resume_from.string(), &extra_text);
    const nlohmann::json extra = read_extra(extra_text, paths.resume_from, first.agents);
    BP_CHECK_ARG(!extra.contains("ranks"),
                 "--resume: checkpoint " << paths.resume_from.string()
                                         << " holds one rank's agents of a population trained "
                                            "over ranks (--distributed), which cannot be "
                                            "resumed in this version; train afresh with "
                                            "another --out");
    // Data-parallel ranks each take their part of the one checkpoint: the same parts.
    BP_CHECK_ARG(comm == nullptr || (first.agents == 1 && first.parts == ranks),
                 "--resume --distributed: checkpoint "
                     << paths.resume_from.string() << " is of "
                     << (first.agents > 1 ? std::to_string(first.agents) + " agents"
                                          : std::to_string(first.parts) + " parts")
                     << "; resume a data-parallel run under mpirun -np <its parts>");
    const std::string saved_sweep = extra["sweep"].get<std::string>();
    BP_CHECK_ARG(
        run.sweep.empty() || run.sweep == saved_sweep,
        "--resume continues the checkpoint's sweep (" << saved_sweep << "); leave out --sweep");
    sweep = saved_sweep;
    const auto groups = extra["groups"].get<std::size_t>();
    // The points again, their configurations from their checkpoints.
    points = sweep_points(parse_sweep(sweep));
    BP_CHECK_ARG(points.size() == groups,
                 "checkpoint " << paths.resume_from.string() << " holds damaged run information");
    saved.assign(groups, nlohmann::json());
    for (std::size_t g = 0; g < groups; ++g) {
      const fs::path file = group_checkpoint(paths.resume_from, g);
      std::string text;
      points[g].config = g == 0 ? first : Trainer::read_checkpoint_config(file.string(), &text);
      if (g == 0) text = extra_text;
      saved[g] = read_extra(text, file, points[g].config.agents);
    }
    // --distributed with one agent means one part per rank, as the checkpoint has it.
    TrainConfig asked = requested.front().config;
    if (data_parallel && asked.parts == 1) asked.parts = ranks;
    BP_CHECK_ARG(!train_keys_given || requested.size() != 1 || !requested.front().values.empty() ||
                     config_to_json(asked) == config_to_json(first),
                 "--resume continues the checkpoint's configuration; leave out the training "
                 "flags or give the same values. The checkpoint has:\n"
                     << config_to_json(first));
    wall_offset = extra.value("wall_s", 0.0);
  }
  // Resuming into another directory starts a run there: one that holds a run is refused.
  if (writer) notice(prepare_run_dir(paths.out, resuming && in_place(paths)));
  if (comm != nullptr) comm->barrier();  // the directory exists before any rank writes there

  // The swept keys, as metrics.csv's last columns.
  std::vector<std::string> swept;
  for (const auto& [key, value] : points.front().values) swept.push_back(key);
  // Agents [agent_lo, agent_hi) of the run are this rank's (all of them in one process; a resumed
  // run has its checkpoint's points).
  total_agents = 0;
  for (const SweepPoint& p : points) total_agents += p.config.agents;
  const int64_t agent_lo = data_parallel ? 0 : total_agents * rank / ranks;
  const int64_t agent_hi = data_parallel ? 1 : total_agents * (rank + 1) / ranks;
  // This rank's groups: the points' agents within [agent_lo, agent_hi), a point cut by a rank's
  // boundary trains the agents on each side there, agent k keeping seed + k.
  std::vector<Group> groups;
  total_agents = 0;
  int64_t rows_done = 0;  // metrics rows written before the checkpoint
  for (std::size_t g = 0; g < points.size(); ++g) {
    const int64_t first = total_agents;
    total_agents += points[g].config.agents;
    const int64_t lo = std::max(first, agent_lo);
    const int64_t hi = std::min(total_agents, agent_hi);
    if (lo >= hi) continue;
    Group& gr = groups.emplace_back();
    gr.index = g;
    gr.point = points[g];
    gr.point.config.agents = hi - lo;
    gr.point.config.seed += static_cast<uint64_t>(lo - first);
    for (const auto& [key, value] : gr.point.values) gr.values.push_back(to_string(value));
    DataParallel dp;
    if (data_parallel && ranks > 1) {
      dp.first_part = rank;
      dp.local_parts = 1;
      dp.gather = [comm](const std::string& bytes) { return comm->allgather(bytes); };
      dp.writes_checkpoints = writer;
    }
    gr.trainer = std::make_unique<Trainer>(device, gr.point.config, dp);
    gr.agents.resize(static_cast<std::size_t>(gr.point.config.agents));
    gr.first_agent = lo;
    gr.checkpoint = group_checkpoint(paths.checkpoint, g);
    if (resuming) {
      gr.trainer->restore_checkpoint(group_checkpoint(paths.resume_from, g).string());
      const auto& agents = saved[g]["agents"];
      BP_CHECK_ARG(agents.is_array() && agents.size() == gr.agents.size(),
                   "checkpoint " << paths.resume_from.string() << " holds damaged run information");
      for (std::size_t k = 0; k < gr.agents.size(); ++k) {
        gr.agents[k].solved = agents[k].value("solved", nlohmann::json());
        gr.agents[k].stop = agents[k].value("stop", std::string());
        const AgentProgress& p = gr.trainer->agent(static_cast<int64_t>(k));
        rows_done += p.updates;
        gr.agents[k].last.agent = static_cast<int64_t>(k);
        gr.agents[k].last.update = p.updates;
        gr.agents[k].last.env_steps = p.env_steps;
        gr.agents[k].last.episodes = p.episodes;
        gr.agents[k].last.recent = p.recent.total();
        gr.agents[k].trained = p.updates > 0;
      }
    }
  }
  const fs::path metrics_path = paths.out / "metrics.csv";
  int64_t rows_kept = 0;
  // Rank 0 writes the run's metrics (other ranks' stream stays closed and is never written).
  std::ofstream metrics = !writer ? std::ofstream()
                          : resuming
                              ? continue_metrics(resume_dir(paths) / "metrics.csv", metrics_path,
                                                 rows_done, metrics_header(swept), &rows_kept)
                              : std::ofstream(metrics_path, std::ios::trunc);
  if (resuming && rows_kept < rows_done) {
    notice(fmt::format(
        "{} held {} of the {} rows written before the checkpoint; {} continues "
        "after them",
        (resume_dir(paths) / "metrics.csv").string(), rows_kept, rows_done, metrics_path.string()));
  }
  if (writer && !resuming) metrics << metrics_header(swept) << '\n';
  BP_CHECK_ARG(!writer || metrics.good(), "cannot write " << metrics_path.string());

  const TrainConfig& base = points.front().config;
  const bool population = total_agents > 1;
  notice(fmt::format(
      "batchpole train: {} on {} envs{}, {}{}, {} -> {}", to_string(base.algorithm), base.envs,
      population ? fmt::format(" x {} agents{}", total_agents,
                               points.size() > 1 ? fmt::format(" ({} sweep points)", points.size())
                                                 : std::string())
                 : std::string(),
      device.description(), comm != nullptr ? fmt::format(" x {} ranks", ranks) : std::string(),
      to_string(base.precision), paths.out.string()));
  const int64_t step_cap =
      run.env_steps > 0 ? run.env_steps
                        : (run.updates > 0 || run.seconds > 0 ? 0 : RunConfig::kDefaultEnvStepCap);
  const auto total_steps = [&] {
    int64_t s = 0;
    for (const Group& g : groups) s += g.trainer->env_steps();
    return s;
  };
  const auto save_all = [&](double wall) {
    for (const Group& g : groups) {
      g.trainer->save_checkpoint(
          g.checkpoint.string(),
          extra_json(g, groups.size(), sweep, wall, data_parallel ? 1 : ranks, rank));
    }
  };

  const auto start = Clock::now();
  const int64_t start_steps = total_steps();
  bool nonfinite = false;
  bool interrupted = false;
  bool out_of_time = false;
  auto last_rate_time = start;
  int64_t last_rate_steps = start_steps;
  double rate = 0;
  int64_t round = 0;
  for (const Group& g : groups) round = std::max(round, g.trainer->updates());
  // A resumed run: agents that solved or diverged stay stopped; those a budget or an interrupt
  // stopped go on under this run's budgets.
  for (Group& g : groups) {
    for (std::size_t k = 0; k < g.agents.size(); ++k) {
      AgentRun& a = g.agents[k];
      if (a.stop != "target" && a.stop != "non-finite") a.stop.clear();
      g.trainer->set_active(static_cast<int64_t>(k), a.stop.empty());
    }
  }
  const UpdateRecord* shown = nullptr;
  while (true) {
    const int64_t before_round = total_steps();
    const auto t0 = Clock::now();
    std::vector<std::vector<UpdateRecord>> results(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].trainer->active_agents() > 0) results[g] = groups[g].trainer->update_agents();
    }
    ++round;
    const auto t1 = Clock::now();
    const double wall = wall_offset + std::chrono::duration<double>(t1 - start).count();
    const double round_rate = static_cast<double>(total_steps() - before_round) /
                              std::max(1e-9, std::chrono::duration<double>(t1 - t0).count());
    if (t1 - last_rate_time > std::chrono::milliseconds(500) || rate == 0) {
      rate = static_cast<double>(total_steps() - last_rate_steps) /
             std::max(1e-9, std::chrono::duration<double>(t1 - last_rate_time).count());
      last_rate_time = t1;
      last_rate_steps = total_steps();
    }
    // Each agent's rows, target and budgets.
    std::string rows;  // this round's metrics rows, in agent order
    double fraction = 0;
    if (run.seconds > 0) fraction = wall / run.seconds;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      Group& gr = groups[g];
      const double per_update_rate =
          round_rate / std::max<double>(1.0, static_cast<double>(total_agents));
      for (const UpdateRecord& rec : results[g]) {
        AgentRun& a = gr.agents[static_cast<std::size_t>(rec.agent)];
        if (!rec.finite) {
          a.stop = "non-finite";
          gr.trainer->stop(rec.agent);
          nonfinite = true;
          continue;
        }
        const uint64_t seed = gr.trainer->agent(rec.agent).seed;
        rows += metrics_row(rec, wall, population ? per_update_rate : round_rate, seed,
                            gr.first_agent + rec.agent, gr.values);
        rows += '\n';
        a.last = rec;
        a.trained = true;
        const EpisodeTally& t = rec.recent;
        if (a.solved.is_null() && t.episodes >= RunConfig::kMinEpisodesForTarget &&
            mean_return(t) >= run.target_return) {
          a.solved = {{"update", rec.update}, {"env_steps", rec.env_steps}, {"wall_s", wall}};
          a.stop = "target";
        }
        double f = 0;
        if (step_cap > 0) {
          f = std::max(f, static_cast<double>(rec.env_steps) / static_cast<double>(step_cap));
        }
        if (run.updates > 0) {
          f = std::max(f, static_cast<double>(rec.update) / static_cast<double>(run.updates));
        }
        if (a.stop.empty() && f >= 1.0) a.stop = "budget";
        if (!a.stop.empty()) gr.trainer->stop(rec.agent);
        fraction = std::max(fraction, std::min(f, 1.0));
      }
    }
    if (nonfinite && total_agents == 1) {  // one agent: stop at once, as before
      metrics << rows;
      metrics.flush();
      break;
    }
    interrupted = cb.interrupted && cb.interrupted();
    out_of_time = run.seconds > 0 && wall >= run.seconds;
    int64_t active = 0;
    int64_t solved = 0;
    double return_sum = 0;
    int64_t with_returns = 0;
    int64_t run_steps_now = total_steps();
    shown = nullptr;
    for (const Group& g : groups) {
      active += g.trainer->active_agents();
      for (const AgentRun& a : g.agents) {
        if (!a.solved.is_null()) ++solved;
        if (a.trained) {
          return_sum += mean_return(a.last.recent);
          ++with_returns;
          if (shown == nullptr && (a.stop.empty() || total_agents == 1)) shown = &a.last;
        }
      }
    }
    if (comm != nullptr) {
      // Every rank's round, in rank order: the rows in the order one process writes them (the
      // ranks hold consecutive agents), and what the ranks decide together on (the run ends
      // when no rank's agents train, on rank 0's clock, or on any rank's interrupt).
      const nlohmann::json mine = {{"rows", rows},
                                   {"active", active},
                                   {"solved", solved},
                                   {"return_sum", return_sum},
                                   {"with", with_returns},
                                   {"steps", run_steps_now},
                                   {"interrupted", interrupted},
                                   {"nonfinite", nonfinite},
                                   {"out_of_time", out_of_time}};
      const std::vector<std::string> all = comm->allgather(mine.dump());
      rows.clear();
      active = solved = with_returns = run_steps_now = 0;
      return_sum = 0;
      interrupted = nonfinite = false;
      for (std::size_t r = 0; r < all.size(); ++r) {
        const nlohmann::json j = nlohmann::json::parse(all[r]);
        interrupted = interrupted || j["interrupted"].get<bool>();
        // Data-parallel ranks train one agent and write the same rows: rank 0's count.
        if (data_parallel && r > 0) continue;
        rows += j["rows"].get<std::string>();
        active += j["active"].get<int64_t>();
        solved += j["solved"].get<int64_t>();
        return_sum += j["return_sum"].get<double>();
        with_returns += j["with"].get<int64_t>();
        run_steps_now += j["steps"].get<int64_t>();
        nonfinite = nonfinite || j["nonfinite"].get<bool>();
        if (r == 0) out_of_time = j["out_of_time"].get<bool>();
      }
    }
    if (writer) {
      metrics << rows;
      metrics.flush();
      BP_REQUIRE(metrics.good(), kRuntime,
                 "writing " << metrics_path.string() << " failed (disk full?)");
    }
    if (shown == nullptr) {
      for (const Group& g : groups) {
        for (const AgentRun& a : g.agents) {
          if (shown == nullptr && a.trained) shown = &a.last;
        }
      }
    }
    const bool done = active == 0 || out_of_time || interrupted;
    if (cb.on_update && shown != nullptr) {
      RunProgress p{*shown, wall, rate, fraction, done};
      p.agents = total_agents;
      p.solved = solved;
      p.active = active;
      p.env_steps = run_steps_now;
      p.mean_return = with_returns > 0 ? return_sum / static_cast<double>(with_returns) : 0.0;
      cb.on_update(p);
    }
    if (run.checkpoint_every > 0 && round % run.checkpoint_every == 0 && !done) save_all(wall);
    if (done) break;
  }
  RunResult result;
  result.out_dir = paths.out.string();
  const double wall = wall_offset + std::chrono::duration<double>(Clock::now() - start).count();
  if (nonfinite && total_agents == 1) {
    result.message = fmt::format(
        "batchpole train: stopped at update {}: a loss or gradient norm is not finite (NaN or "
        "infinity). The last good checkpoint is {}; try a smaller --lr.",
        groups.front().trainer->updates(),
        fs::exists(paths.checkpoint) ? paths.checkpoint.string() : "(none yet)");
    result.exit_code = 1;
    return result;
  }
  // Agents the clock or an interrupt stopped.
  for (Group& g : groups) {
    for (AgentRun& a : g.agents) {
      if (a.stop.empty()) a.stop = interrupted ? "interrupted" : "budget";
    }
  }
  save_all(wall);

  // Every agent's entry of summary.json, with its point, in the run's agent order (a
  // distributed run gathers them from the ranks, which hold consecutive agents).
  nlohmann::json entries = nlohmann::json::array();
  for (const Group& g : groups) {
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [key, value] : g.point.values) {
      values[key] = nlohmann::json::parse(to_string(value), nullptr, false);
      if (values[key].is_discarded()) values[key] = to_string(value);
    }
    for (std::size_t k = 0; k < g.agents.size(); ++k) {
      const AgentRun& a = g.agents[k];
      entries.push_back(
          {{"point", g.index},
           {"entry",
            {{"agent", g.first_agent + static_cast<int64_t>(k)},
             {"seed", g.trainer->agent(static_cast<int64_t>(k)).seed},
             {"config", values},
             {"solved", !a.solved.is_null()},
             {"env_steps_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["env_steps"]},
             {"wall_s_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["wall_s"]},
             {"updates_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["update"]},
             {"final_mean_return", a.trained ? mean_return(a.last.recent) : 0.0},
             {"env_steps", g.trainer->agent(static_cast<int64_t>(k)).env_steps},
             {"stop_reason", a.stop}}}});
    }
  }
  int64_t updates = 0;
  for (const Group& g : groups) updates = std::max(updates, g.trainer->updates());
  int64_t end_steps = total_steps();
  int64_t first_steps = start_steps;
  if (comm != nullptr && !data_parallel) {
    const nlohmann::json mine = {
        {"entries", entries}, {"updates", updates}, {"steps", end_steps}, {"start", start_steps}};
    entries = nlohmann::json::array();
    updates = end_steps = first_steps = 0;
    for (const std::string& text : comm->allgather(mine.dump())) {
      const nlohmann::json j = nlohmann::json::parse(text);
      for (const auto& e : j["entries"]) entries.push_back(e);
      updates = std::max(updates, j["updates"].get<int64_t>());
      end_steps += j["steps"].get<int64_t>();
      first_steps += j["start"].get<int64_t>();
    }
  }
  const double run_steps = static_cast<double>(end_steps - first_steps);
  const double run_wall = std::chrono::duration<double>(Clock::now() - start).count();
  const std::string stop_reason = interrupted ? "interrupted"
                                  : nonfinite ? "non-finite"
                                              : [&] {
                                                  for (const auto& e : entries) {
                                                    if (e["entry"]["stop_reason"] != "target")
                                                      return std::string("budget");
                                                  }
                                                  return std::string("target");
                                                }();
  nlohmann::json summary;
  if (!population) {
    const AgentRun& a = groups.front().agents.front();
    const EpisodeTally& t = a.last.recent;
    summary = {
        {"solved", !a.solved.is_null()},
        {"env_steps_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["env_steps"]},
        {"wall_s_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["wall_s"]},
        {"updates_to_solve", a.solved.is_null() ? nlohmann::json() : a.solved["update"]},
        {"final_mean_return", mean_return(t)},
        {"final_mean_length", t.episodes > 0 ? t.length_sum / t.episodes : 0.0},
        {"recent_episodes", t.episodes},
        {"episodes", a.last.episodes}};
  } else {
    nlohmann::json list = nlohmann::json::array();
    std::vector<const nlohmann::json*> everyone;
    std::vector<std::vector<const nlohmann::json*>> of_point(points.size());
    for (const auto& e : entries) {
      list.push_back(e["entry"]);
      of_point.at(e["point"].get<std::size_t>()).push_back(&e["entry"]);
      everyone.push_back(&e["entry"]);
    }
    nlohmann::json by_point = nlohmann::json::array();
    if (points.size() > 1) {
      for (const auto& mine : of_point) {
        nlohmann::json point = aggregate(mine);
        point["config"] = mine.front()->at("config");
        by_point.push_back(point);
      }
    }
    const nlohmann::json all = aggregate(everyone);
    summary = {{"solved", all["solved"] == all["agents"]}, {"agents", list}, {"population", all}};
    if (points.size() > 1) {
      summary["points"] = by_point;
      summary["sweep"] = sweep;
    }
  }
  summary["target_return"] = run.target_return;
  summary["env_steps"] = end_steps;
  summary["updates"] = updates;
  summary["wall_s"] = wall;
  summary["env_steps_per_s"] = run_steps / std::max(run_wall, 1e-9);
  summary["stop_reason"] = stop_reason;
  summary["device"] = device.description();
  summary["threads"] = device.threads();
  summary["config"] = nlohmann::json::parse(config_to_json(base));
  summary["version"] = BATCHPOLE_VERSION;
  if (comm != nullptr) summary["ranks"] = ranks;
  result.summary_json = summary.dump(2);
  if (writer) write_file_atomically(paths.out / "summary.json", result.summary_json + '\n');
  if (!population) {
    const AgentRun& a = groups.front().agents.front();
    result.message = fmt::format(
        "{} after {} updates, {} env steps, {:.1f} s ({:.3g}/s); mean return {:.1f}",
        a.solved.is_null() ? "stopped (" + stop_reason + ")" : "solved", updates, total_steps(),
        wall, run_steps / std::max(run_wall, 1e-9), mean_return(a.last.recent));
  } else {
    const auto& all = summary["population"];
    result.message =
        fmt::format("{}/{} agents solved after {} updates, {} env steps, {:.1f} s ({:.3g}/s){}",
                    all["solved"].get<int64_t>(), total_agents, updates, end_steps, wall,
                    run_steps / std::max(run_wall, 1e-9),
                    all["solved"].get<int64_t>() > 0
                        ? fmt::format("; median {} env steps to solve",
                                      all["env_steps_to_solve"]["median"].get<double>())
                        : std::string());
    if (nonfinite)
      result.message += "; some agents stopped on a non-finite loss (see summary.json)";
  }
  result.exit_code = interrupted ? 130 : nonfinite ? 1 : 0;
  return result;
}

}  // namespace batchpole
