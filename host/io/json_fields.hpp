// FieldValue to and from nlohmann::json, for the field tables' JSON (configurations, run
// options). Kept out of the public headers, which carry no JSON library.
#pragma once

#include <nlohmann/json.hpp>

#include "batchpole/core/fields.hpp"

namespace batchpole {

inline nlohmann::json field_to_json(const FieldValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

// The JSON value as the field's kind expects it (numbers of any JSON kind for numeric fields;
// the field's check then decides), or an error naming the key.
inline FieldValue field_from_json(const FieldSpec& f, const nlohmann::json& j) {
  FieldValue v;
  if (j.is_number_unsigned()) {
    v = j.get<uint64_t>();
  } else if (j.is_number_integer()) {
    v = j.get<int64_t>();
  } else if (j.is_number_float()) {
    v = j.get<double>();
  } else if (j.is_boolean()) {
    v = j.get<bool>();
  } else if (j.is_string()) {
    v = j.get<std::string>();
  } else {
    BP_CHECK_ARG(false, f.key << " must be " << f.describe_range() << ", got " << j.dump());
  }
  f.check(v);
  if (f.kind == FieldKind::kFloat) return static_cast<float>(field_real(v));
  return v;
}

}  // namespace batchpole
