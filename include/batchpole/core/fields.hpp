// Tables of configuration fields. One entry per key names its JSON key and command-line flag,
// its help text, its type and its range, and how to read and write it in the struct it
// configures. The flags, the JSON keys (--config files, summaries, checkpoints), the defaults
// shown in --help and the validation of every number all come from the table, so that a flag
// and a JSON key can never disagree.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "batchpole/core/common.hpp"

namespace batchpole {

// A value on its way into or out of a field: integers (signed or unsigned 64-bit), single or
// double precision reals, booleans and words.
using FieldValue = std::variant<int64_t, uint64_t, float, double, bool, std::string>;

enum class FieldKind : uint8_t {
  kInt,     // int64_t within [int_min, int_max]
  kUInt,    // uint64_t, any value (seeds)
  kFloat,   // float within the real range, finite
  kDouble,  // double within the real range, finite
  kBool,
  kChoice,  // one of `choices`
  kText,    // any text (paths)
};

struct FieldSpec {
  std::string key;  // JSON key; the flag is --key with '_' written '-'
  FieldKind kind = FieldKind::kInt;
  std::string help;  // one line for --help
  int64_t int_min = std::numeric_limits<int64_t>::min();
  int64_t int_max = std::numeric_limits<int64_t>::max();
  double real_min = -std::numeric_limits<double>::infinity();
  double real_max = std::numeric_limits<double>::infinity();
  bool real_min_open = false;  // (real_min, ...] rather than [real_min, ...]
  std::vector<std::string> choices;
  // For booleans that default to true: the flag that turns them off (e.g. "--no-normalize").
  std::string negated_flag;
  std::string short_flag;   // e.g. "-q", beside the long flag
  bool json_only = false;   // no flag of its own (another flag covers it)
  bool input_only = false;  // read from JSON and flags, never written (a unit-converting alias)

  [[nodiscard]] std::string flag() const;
  // The range as words, for --help and messages ("an integer in [1, 65536]").
  [[nodiscard]] std::string describe_range() const;
  // Throws Error(kInvalidArgument) naming the key unless v has this field's type and range.
  void check(const FieldValue& v) const;
  // Parses the text of a flag (the whole of it) into a checked value.
  [[nodiscard]] FieldValue parse(const std::string& text) const;
};

template <class S>
struct Field : FieldSpec {
  std::function<FieldValue(const S&)> get;
  std::function<void(S&, const FieldValue&)> set;  // called with checked values only

  // Checks v and writes it into s.
  void assign(S& s, const FieldValue& v) const {
    check(v);
    set(s, v);
  }
};

// The value as text, as the JSON of a summary would show it ("0.002", "true", "a2c").
std::string to_string(const FieldValue& v);

// Typed access to a checked value (integers and reals convert exactly as their kind allows).
int64_t field_int(const FieldValue& v);
uint64_t field_uint(const FieldValue& v);
double field_real(const FieldValue& v);
bool field_bool(const FieldValue& v);
const std::string& field_word(const FieldValue& v);

template <class S>
const Field<S>* find_field(const std::vector<Field<S>>& table, const std::string& key) {
  for (const auto& f : table) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

}  // namespace batchpole
