// Malformed and out-of-range configurations, through both doors: --config JSON keys
// (run_keys_from_json) and command-line flags (FieldSpec::parse). Every value is refused with
// Error(kInvalidArgument) naming the key, or accepted exactly as written (never narrowed);
// a flag and a JSON key agree on every number; random damage to a real configuration never
// gets past the checks in another form. And the byte counts that sizes turn into cannot wrap.
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "batchpole/core/checked.hpp"
#include "batchpole/device/buffer.hpp"
#include "batchpole/io/config_json.hpp"
#include "batchpole/nn/nn_elements.hpp"
#include "batchpole/rl/trainer.hpp"
#include "batchpole/run/train_run.hpp"
#include "test_util.hpp"

namespace batchpole {
namespace {

std::unique_ptr<Device> cpu() {
  DeviceOptions o;
  o.device = DeviceRequest::parse("cpu");
  o.threads = 1;
  return make_device(o);
}

// Resolves a --config text as `batchpole train` does (keys, then the run's and the training's
// configurations). Returns "" when accepted, else the message of the Error(kInvalidArgument)
// it must be.
std::string resolve(const std::string& json, const DevicePlan& plan, RunKeys* keys_out = nullptr,
                    TrainConfig* train_out = nullptr, RunConfig* run_out = nullptr) {
  try {
    const RunKeys keys = run_keys_from_json(json, "--config test.json");
    const RunConfig run = resolve_run_config(keys);
    const TrainConfig train = resolve_train_config(keys, plan);
    if (keys_out != nullptr) *keys_out = keys;
    if (train_out != nullptr) *train_out = train;
    if (run_out != nullptr) *run_out = run;
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument) << json << ": " << e.what();
    EXPECT_NE(std::string(e.what()), "") << json;
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << json << ": not a batchpole::Error: " << e.what();
    return e.what();
  }
}

// Values of every JSON kind, in and out of every field's range.
const std::vector<std::string>& json_values() {
  static const std::vector<std::string> v = {"0",
                                             "1",
                                             "-1",
                                             "2",
                                             "5",
                                             "32.9",
                                             "1.5",
                                             "-0.0",
                                             "1e-50",
                                             "1e308",
                                             "-1e308",
                                             "4294967297",
                                             "4294967360",
                                             "2147483648",
                                             "-2147483649",
                                             "9223372036854775807",
                                             "9223372036854775808",
                                             "-9223372036854775808",
                                             "18446744073709551615",
                                             "18446744073709551616",
                                             "1e19",
                                             "1e20",
                                             "5e7",
                                             "0.5",
                                             "1024",
                                             "1025",
                                             "100000",
                                             "8388608",
                                             "8388609",
                                             "65537",
                                             "180",
                                             "181",
                                             "true",
                                             "false",
                                             "null",
                                             "\"\"",
                                             "\"a2c\"",
                                             "\"cpu\"",
                                             "\"notebook\"",
                                             "\"x\"",
                                             "[]",
                                             "{}",
                                             "[1]",
                                             "{\"a\": 1}",
                                             "\"5\""};
  return v;
}

TEST(ConfigFuzz, EveryKeyAcceptsExactlyWhatItsRangeAllows) {
  const auto device = cpu();
  const DevicePlan& plan = device->plan();
  std::vector<const FieldSpec*> specs;
  for (const auto& f : run_config_fields()) specs.push_back(&f);
  for (const auto& f : train_config_fields()) specs.push_back(&f);
  int refused = 0;
  int accepted = 0;
  for (const FieldSpec* f : specs) {
    for (const std::string& value : json_values()) {
      const std::string json = "{\"" + f->key + "\": " + value + "}";
      RunKeys keys;
      TrainConfig train;
      RunConfig run;
      const std::string error = resolve(json, plan, &keys, &train, &run);
      if (!error.empty()) {
        EXPECT_NE(error.find(f->key), std::string::npos) << json << ": " << error;
        ++refused;
        continue;
      }
      ++accepted;
      // Accepted: the value is what the field holds, not a narrowed or wrapped version of it.
      if (f->input_only) continue;
      FieldValue held;
      if (const auto* tf = find_field(train_config_fields(), f->key); tf != nullptr) {
        held = tf->get(train);
      } else {
        held = find_field(run_config_fields(), f->key)->get(run);
      }
      const FieldValue given = keys.at(f->key);
      if (f->kind == FieldKind::kInt) {
        EXPECT_EQ(field_int(held), field_int(given)) << json;
        EXPECT_EQ(static_cast<double>(field_int(held)), std::stod(value)) << json;
      } else if (f->kind == FieldKind::kUInt) {
        EXPECT_EQ(field_uint(held), field_uint(given)) << json;
        EXPECT_EQ(static_cast<double>(field_uint(held)), std::stod(value)) << json;
      } else if (f->kind == FieldKind::kFloat) {
        EXPECT_EQ(static_cast<float>(field_real(held)), static_cast<float>(std::stod(value)))
            << json;
      } else if (f->kind == FieldKind::kDouble) {
        EXPECT_EQ(field_real(held), std::stod(value)) << json;
      } else {
        EXPECT_EQ(to_string(held), to_string(given)) << json;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0);
}

// Issue 15, items 4 and 5 (commit 3512ac4 accepted each of these: run keys skipped validation,
// numbers were narrowed to the field's type).
TEST(ConfigFuzz, RunKeysAndNarrowingNumbersAreRefused) {
  const auto device = cpu();
  for (const char* json : {R"({"updates": -1})",
                           R"({"env_steps": -100})",
                           R"({"checkpoint_every": -5})",
                           R"({"seconds": -1})",
                           R"({"threads": 100000})",
                           R"({"threads": -1})",
                           R"({"n_steps": 4294967297})",
                           R"({"hidden": 4294967360})",
                           R"({"envs": 32.9})",
                           R"({"seed": -1})",
                           R"({"seed": 1.5})",
                           R"({"envs": 9000000000000000000})",
                           R"({"algo": 5})",
                           R"({"lr": 1e-50})",
                           R"({"gamma": 1e-50})",
                           R"({"device": "tpu"})",
                           R"({"out": 5})",
                           R"({"preset": "x"})",
                           R"({"envs": 1, "envs": 1e400})",
                           "[]",
                           "1",
                           "",
                           "{",
                           R"({"envs": 4,})",
                           "{\"envs\": 4}\n{}"}) {
    EXPECT_NE(resolve(json, device->plan()), "") << json;
  }
  EXPECT_NE(resolve(R"({"updates": -1})", device->plan()).find("updates"), std::string::npos);
}

// A flag's text and the same number in a --config file: accepted alike, to the same value.
TEST(ConfigFuzz, FlagsAndJsonKeysAgree) {
  const std::vector<std::string> texts = {"0",
                                          "1",
                                          "-1",
                                          "7",
                                          "32.9",
                                          "1e3",
                                          "5e7",
                                          "1.5",
                                          "-0",
                                          "1e-50",
                                          "1e308",
                                          "1e400",
                                          "-1e400",
                                          "4294967297",
                                          "2147483647",
                                          "2147483648",
                                          "9223372036854775807",
                                          "9223372036854775808",
                                          "18446744073709551615",
                                          "18446744073709551616",
                                          "0.1",
                                          "180",
                                          "181",
                                          "1024",
                                          "1025"};
  const auto check = [&](const FieldSpec& f) {
    for (const std::string& text : texts) {
      FieldValue flag;
      bool flag_ok = true;
      try {
        flag = f.parse(text);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
        flag_ok = false;
      }
      RunKeys keys;
      bool json_ok = true;
      try {
        keys = run_keys_from_json("{\"" + f.key + "\": " + text + "}", "test");
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
        json_ok = false;
      }
      // JSON cannot hold numbers beyond double's range (1e400): the flag must refuse them too.
      EXPECT_EQ(flag_ok, json_ok) << f.flag() << " " << text;
      if (flag_ok && json_ok) {
        const FieldValue& key = keys.at(f.key);
        if (f.kind == FieldKind::kInt) {
          EXPECT_EQ(field_int(flag), field_int(key)) << f.flag() << " " << text;
        } else if (f.kind == FieldKind::kUInt) {
          EXPECT_EQ(field_uint(flag), field_uint(key)) << f.flag() << " " << text;
        } else {
          EXPECT_EQ(field_real(flag), field_real(key)) << f.flag() << " " << text;
        }
      }
    }
  };
  for (const auto& f : run_config_fields()) {
    if (f.kind != FieldKind::kText && f.kind != FieldKind::kChoice && f.kind != FieldKind::kBool) {
      check(f);
    }
  }
  for (const auto& f : train_config_fields()) {
    if (f.kind != FieldKind::kText && f.kind != FieldKind::kChoice && f.kind != FieldKind::kBool) {
      check(f);
    }
  }
}

TEST(ConfigFuzz, MalformedFlagTextIsRefused) {
  std::vector<const FieldSpec*> specs;
  for (const auto& f : run_config_fields()) specs.push_back(&f);
  for (const auto& f : train_config_fields()) specs.push_back(&f);
  for (const FieldSpec* f : specs) {
    if (f->kind == FieldKind::kBool || f->kind == FieldKind::kText) continue;
    // 0x10 and infinity are numbers to strtod, not to JSON; a flag takes what a key takes.
    for (const char* text :
         {"", " ", "abc", "1 ", " 1", "1,5", "0x10", "0x1p3", "1e", "--1", "nan", "inf", "-inf",
          "NaN", "infinity", "1e5x", "1..5", "\xff", "\xd9\xa3"}) {
      try {
        const FieldValue v = f->parse(text);
        ADD_FAILURE() << f->flag() << " '" << text << "' accepted as " << to_string(v);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument);
        const std::string m = e.what();
        EXPECT_TRUE(m.find(f->flag()) != std::string::npos || m.find(f->key) != std::string::npos)
            << m;
      }
    }
  }
}

// Random damage to a real configuration file: each variant is refused as Error(kInvalidArgument)
// or is a configuration that passes every check; none takes long.
TEST(ConfigFuzz, RandomlyDamagedConfigurations) {
  const auto device = cpu();
  TrainConfig c;
  std::string base = config_to_json(c);
  base.insert(
      base.size() - 2,
      ",\n  \"updates\": 3,\n  \"env_steps\": 1000,\n  \"threads\": 2,\n  \"checkpoint_every\": "
      "10,\n  \"out\": \"x\",\n  \"seconds\": 1.5,\n  \"target_return\": 400");
  ASSERT_EQ(resolve(base, device->plan()), "") << base;
  std::mt19937_64 rng(3);
  const std::string alphabet = "0123456789-+.eE\"{}[],:tfn \\ux";
  int accepted = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1 + rng() % 4);
          break;
        case 2:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          s.insert(at, std::to_string(static_cast<int64_t>(rng())));
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    TrainConfig train;
    if (resolve(s, device->plan(), nullptr, &train).empty()) {
      ++accepted;
      EXPECT_NO_THROW(train.validate()) << s;
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0)
        << s;
    if (HasFailure()) break;
  }
  std::printf("%d of 4000 damaged configurations were still valid\n", accepted);
  // Deep nesting and long text: refused, without running out of stack.
  EXPECT_NE(resolve(std::string(100000, '[') + std::string(100000, ']'), device->plan()), "");
  EXPECT_NE(resolve("{\"out\": " + std::string(1 << 20, '[') + "}", device->plan()), "");
  EXPECT_NE(resolve("{\"" + std::string(1 << 20, 'k') + "\": 1}", device->plan()), "");
}

// Issue 15, item 2: a thread count past any machine is refused before OpenMP sees it (3512ac4:
// 100000 threads overflowed the stack inside libgomp).
TEST(ConfigFuzz, ThreadCountsAreBounded) {
  for (int threads : {-1, 1025, 50000, 100000, std::numeric_limits<int>::max()}) {
    DeviceOptions o;
    o.device = DeviceRequest::parse("cpu");
    o.threads = threads;
    try {
      (void)make_device(o);
      ADD_FAILURE() << threads << " threads accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::kInvalidArgument) << e.what();
    }
  }
  const FieldSpec* threads = find_field(run_config_fields(), "threads");
  ASSERT_NE(threads, nullptr);
  EXPECT_THROW((void)threads->parse("1025"), Error);
  EXPECT_NO_THROW((void)threads->parse("1024"));
}

TEST(CheckedBytes, SaturateInsteadOfWrapping) {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  static_assert(checked_mul(3, 5) == 15);
  static_assert(checked_mul(0, kMax - 1) == 0);
  static_assert(checked_mul(kMax, 0) == kBytesOverflow);  // saturation sticks
  static_assert(checked_mul(std::size_t{1} << 32, std::size_t{1} << 32) == kBytesOverflow);
  static_assert(checked_mul(std::size_t{1} << 31, std::size_t{1} << 32) == std::size_t{1} << 63);
  static_assert(checked_mul(2, 3, 7) == 42);
  static_assert(checked_mul(std::size_t{1} << 40, 1, std::size_t{1} << 30) == kBytesOverflow);
  static_assert(checked_add(kMax - 2, 1) == kMax - 1);
  static_assert(checked_add(kMax - 1, 1) == kBytesOverflow);
  static_assert(checked_add(1, 2, 3) == 6);
  static_assert(checked_size(-1) == kBytesOverflow);
  static_assert(checked_size(7) == 7);
  EXPECT_EQ(bytes_text(12), "12 bytes");
  EXPECT_NE(bytes_text(kBytesOverflow).find("more than"), std::string::npos);
}

// Issue 15, item 8: the largest sizes the fields allow (2^31 - 1 environments for 2^31 - 1
// steps) once made a byte count that wrapped around 2^64 and was reported as a number smaller
// than the truth (and could have "fit").
TEST(CheckedBytes, MemoryEstimatesOfTheLargestConfigurationsDoNotWrap) {
  const auto device = cpu();
  TrainConfig c;
  c.algorithm = Algorithm::kReinforce;
  c.envs = std::numeric_limits<int32_t>::max();
  c.env.max_episode_steps = std::numeric_limits<int32_t>::max();
  // At least 43 bytes per rollout row (observation, action, reward, ...) for 2^62 rows.
  EXPECT_EQ(Trainer::bytes_required(c, *device), kBytesOverflow);
  try {
    Trainer t(*device, c);
    ADD_FAILURE() << "a rollout of 2^62 rows was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("more than"), std::string::npos) << e.what();
  }
  c.algorithm = Algorithm::kA2C;
  c.n_steps = 1'000'000;
  const std::size_t a2c = Trainer::bytes_required(c, *device);
  EXPECT_GE(a2c, checked_mul(1'000'000, static_cast<std::size_t>(c.envs), 40));
  // A buffer whose byte count overflows is refused by the device, not allocated short.
  EXPECT_THROW(Buffer<double>(*device, (std::size_t{1} << 61) + 1), Error);
}

// UBSan: NaN reached a float-to-int conversion in portable_exp (a NaN loss must stay NaN, so
// that training stops with its message).
TEST(CheckedBytes, PortableExpOfNanIsNan) {
  EXPECT_TRUE(std::isnan(portable_exp(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace batchpole
