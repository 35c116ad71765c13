// libFuzzer target: the configuration readers. The input is the text of a --config file (and,
// line by line, the text of flags): every key and value goes through the field tables, which
// must refuse with batchpole::Error or accept a configuration that passes validate(). Any
// other exception, a crash or a sanitizer report is a finding.
#include <cstdint>
#include <memory>
#include <string>

#include "batchpole/io/config_json.hpp"
#include "batchpole/run/train_run.hpp"

namespace {

const batchpole::DevicePlan& plan() {
  static const std::unique_ptr<batchpole::Device> d = [] {
    batchpole::DeviceOptions o;
    o.device = batchpole::DeviceRequest::parse("cpu");
    o.threads = 1;
    return batchpole::make_device(o);
  }();
  return d->plan();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const batchpole::RunKeys keys = batchpole::run_keys_from_json(text, "fuzz");
    (void)batchpole::resolve_run_config(keys);
    const batchpole::TrainConfig c = batchpole::resolve_train_config(keys, plan());
    c.validate();
    // What is accepted reads back as itself.
    const std::string json = batchpole::config_to_json(c);
    if (batchpole::config_to_json(batchpole::config_from_json(json)) != json) __builtin_trap();
  } catch (const batchpole::Error&) {
  }
  try {
    (void)batchpole::config_from_json(text);
  } catch (const batchpole::Error&) {
  }
  // The text as the value of every flag.
  const std::string flag = text.substr(0, text.find('\n'));
  for (const auto& f : batchpole::train_config_fields()) {
    try {
      (void)f.parse(flag);
    } catch (const batchpole::Error&) {
    }
  }
  for (const auto& f : batchpole::run_config_fields()) {
    try {
      (void)f.parse(flag);
    } catch (const batchpole::Error&) {
    }
  }
  return 0;
}
