// Command-line flags made from a field table (batchpole/core/fields.hpp): one option per field,
// read as text and parsed by the field itself, so that a flag and a --config key are checked
// the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "batchpole/core/fields.hpp"
#include "batchpole/run/train_run.hpp"

namespace batchpole::cli {

// The raw text of the flags a command declared, and the boolean flags given.
struct FlagTexts {
  std::map<std::string, std::string> text;  // key -> the option's text
  std::map<std::string, bool> set;          // key -> a boolean flag was given
};

// Adds one option per field of `table` (skipping those named in `skip`); `defaults` supplies
// the default shown in --help (nullptr: none shown).
template <class S>
void add_field_flags(CLI::App& cmd, const std::vector<Field<S>>& table, FlagTexts& flags,
                     const S* defaults, const std::vector<std::string>& skip = {}) {
  for (const auto& f : table) {
    if (f.json_only || std::find(skip.begin(), skip.end(), f.key) != skip.end()) continue;
    std::string help = f.help;
    if (defaults != nullptr && !f.input_only && f.kind != FieldKind::kText) {
      // A default outside the field's range stands for "the device's own" (the help says so).
      const FieldValue d = f.get(*defaults);
      try {
        f.check(d);
        help += " (default " + to_string(d) + ")";
      } catch (const Error&) {
      }
    }
    if (f.kind == FieldKind::kBool) {
      std::string name = f.negated_flag.empty() ? f.flag() : f.negated_flag;
      if (!f.short_flag.empty()) name = f.short_flag + "," + name;
      cmd.add_flag(name, flags.set[f.key], f.negated_flag.empty() ? help : "Do not: " + help);
      continue;
    }
    auto* opt = cmd.add_option(f.flag(), flags.text[f.key], help);
    if (f.kind == FieldKind::kChoice) opt->check(CLI::IsMember(f.choices));
  }
}

// The given flags as checked values, over `keys` (flags win).
template <class S>
void take_field_flags(const CLI::App& cmd, const std::vector<Field<S>>& table,
                      const FlagTexts& flags, RunKeys& keys) {
  for (const auto& f : table) {
    if (f.kind == FieldKind::kBool) {
      const auto it = flags.set.find(f.key);
      if (it != flags.set.end() && it->second) keys[f.key] = f.negated_flag.empty();
      continue;
    }
    const auto it = flags.text.find(f.key);
    if (it == flags.text.end() || cmd.count(f.flag()) == 0) continue;
    keys[f.key] = f.parse(it->second);
  }
}

// The given flags of `table` parsed, checked by their fields and written into s.
template <class S>
void assign_field_flags(const CLI::App& cmd, const std::vector<Field<S>>& table,
                        const FlagTexts& flags, S& s) {
  RunKeys keys;
  take_field_flags(cmd, table, flags, keys);
  for (const auto& [key, value] : keys) find_field(table, key)->assign(s, value);
}

// Fields of a command's own options (bench, eval, compare), so that every number a flag takes is
// checked by a field, as train's are: an integer member in [lo, hi], or a seed.
template <class S, class T>
Field<S> int_field(std::string key, std::string help, int64_t lo, int64_t hi, T S::*member) {
  Field<S> f;
  f.key = std::move(key);
  f.kind = FieldKind::kInt;
  f.help = std::move(help);
  f.int_min = lo;
  f.int_max = hi;
  f.get = [member](const S& s) { return FieldValue(static_cast<int64_t>(s.*member)); };
  f.set = [member](S& s, const FieldValue& v) { s.*member = static_cast<T>(field_int(v)); };
  return f;
}
template <class S>
Field<S> seed_field(std::string help, uint64_t S::*member) {
  Field<S> f;
  f.key = "seed";
  f.kind = FieldKind::kUInt;
  f.help = std::move(help);
  f.get = [member](const S& s) { return FieldValue(s.*member); };
  f.set = [member](S& s, const FieldValue& v) { s.*member = field_uint(v); };
  return f;
}
template <class S>
Field<S> threads_field(std::string help, int S::*member) {
  return int_field<S>("threads", std::move(help), 0, kMaxCpuThreads, member);
}

}  // namespace batchpole::cli
