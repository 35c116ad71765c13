#include "batchpole/io/config_json.hpp"

#include <nlohmann/json.hpp>

#include "json_fields.hpp"

namespace batchpole {

std::string config_to_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : train_config_fields()) {
    // A run of one part writes its configuration as before parts existed (checkpoints and
    // summaries of such runs are unchanged).
    if (f.key == "parts" && c.parts == 1) continue;
    if (!f.input_only) j[f.key] = field_to_json(f.get(c));
  }
  return j.dump(2);
}

TrainConfig config_from_json(const std::string& text, const TrainConfig& base) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    BP_CHECK_ARG(false, "configuration is not valid JSON: " << e.what());
  }
  BP_CHECK_ARG(j.is_object(), "configuration must be a JSON object");
  TrainConfig c = base;
  const auto& fields = train_config_fields();
  for (const auto& [key, value] : j.items()) {
    const auto* f = find_field(fields, key);
    BP_CHECK_ARG(f != nullptr, "unknown configuration key '" << key << "'");
    f->assign(c, field_from_json(*f, value));
  }
  return c;
}

}  // namespace batchpole
