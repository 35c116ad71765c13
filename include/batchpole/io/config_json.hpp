// Configurations as JSON text and back, through their field tables: the keys of `batchpole
// train --config FILE.json`, of summary.json and of checkpoints. Unknown keys are refused by
// name; every value is checked against its field's type and range.
#pragma once

#include <string>

#include "batchpole/rl/train_config.hpp"

namespace batchpole {

std::string config_to_json(const TrainConfig& c);
// Keys of `text` (a JSON object) set over `base`; throws Error(kInvalidArgument) naming the key.
TrainConfig config_from_json(const std::string& text, const TrainConfig& base = {});

}  // namespace batchpole
