#include "batchpole/core/fields.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace batchpole {

namespace {

// 2^63 and 2^64 as doubles: the bounds of the integers a double may stand for here.
constexpr double kTwo63 = 9223372036854775808.0;
constexpr double kTwo64 = 18446744073709551616.0;

bool holds_number(const FieldValue& v) {
  return std::holds_alternative<int64_t>(v) || std::holds_alternative<uint64_t>(v) ||
         std::holds_alternative<float>(v) || std::holds_alternative<double>(v);
}

double as_double(const FieldValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  if (const auto* f = std::get_if<float>(&v)) return static_cast<double>(*f);
  return std::get<double>(v);
}

bool is_real(const FieldValue& v) {
  return std::holds_alternative<float>(v) || std::holds_alternative<double>(v);
}

// Decimal notation as JSON writes numbers, with an optional '+' and a bare '.5' or '5.' allowed:
// strtod alone would also take hexadecimal (0x10), "inf", "nan" and leading blanks, which a
// --config file cannot hold, and a flag must mean what the same key means.
bool is_decimal(const std::string& t) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i - from;
  };
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  std::size_t mantissa = digits();
  if (i < t.size() && t[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == t.size();
}

std::string quoted(const FieldValue& v) {
  return std::holds_alternative<std::string>(v) ? "'" + std::get<std::string>(v) + "'"
                                                : to_string(v);
}

}  // namespace

std::string FieldSpec::flag() const {
  std::string f = "--" + key;
  for (char& ch : f) {
    if (ch == '_') ch = '-';
  }
  return f;
}

std::string FieldSpec::describe_range() const {
  std::ostringstream os;
  switch (kind) {
    case FieldKind::kInt:
      os << "an integer";
      if (int_min != std::numeric_limits<int64_t>::min() ||
          int_max != std::numeric_limits<int64_t>::max()) {
        os << " in [" << int_min << ", " << int_max << "]";
      }
      break;
    case FieldKind::kUInt:
      os << "an integer in [0, 2^64)";
      break;
    case FieldKind::kFloat:
    case FieldKind::kDouble:
      os << "a finite number";
      if (std::isfinite(real_min) || std::isfinite(real_max)) {
        os << " in " << (real_min_open ? "(" : "[") << real_min << ", " << real_max
           << (std::isfinite(real_max) ? "]" : ")");
      }
      break;
    case FieldKind::kBool:
      os << "true or false";
      break;
    case FieldKind::kText:
      os << "text";
      break;
    case FieldKind::kChoice: {
      os << "one of";
      for (std::size_t i = 0; i < choices.size(); ++i) os << (i == 0 ? " " : ", ") << choices[i];
      break;
    }
  }
  return os.str();
}

void FieldSpec::check(const FieldValue& v) const {
  bool ok = false;
  switch (kind) {
    case FieldKind::kInt: {
      if (const auto* i = std::get_if<int64_t>(&v)) {
        ok = *i >= int_min && *i <= int_max;
      } else if (const auto* u = std::get_if<uint64_t>(&v)) {
        ok = *u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
             static_cast<int64_t>(*u) >= int_min && static_cast<int64_t>(*u) <= int_max;
      } else if (is_real(v)) {
        const double d = as_double(v);
        ok = std::isfinite(d) && d == std::floor(d) && d >= -kTwo63 && d < kTwo63 &&
             static_cast<int64_t>(d) >= int_min && static_cast<int64_t>(d) <= int_max;
      }
      break;
    }
    case FieldKind::kUInt: {
      if (const auto* i = std::get_if<int64_t>(&v)) {
        ok = *i >= 0;
      } else if (std::holds_alternative<uint64_t>(v)) {
        ok = true;
      } else if (is_real(v)) {
        const double d = as_double(v);
        ok = std::isfinite(d) && d == std::floor(d) && d >= 0 && d < kTwo64;
      }
      break;
    }
    case FieldKind::kFloat:
    case FieldKind::kDouble: {
      if (holds_number(v)) {
        const double d = as_double(v);
        ok = std::isfinite(d) && (real_min_open ? d > real_min : d >= real_min) && d <= real_max &&
             (kind == FieldKind::kDouble ||
              std::abs(d) <= static_cast<double>(std::numeric_limits<float>::max()));
      }
      break;
    }
    case FieldKind::kBool:
      ok = std::holds_alternative<bool>(v);
      break;
    case FieldKind::kChoice:
      if (const auto* s = std::get_if<std::string>(&v)) {
        for (const auto& c : choices) ok = ok || c == *s;
      }
      break;
    case FieldKind::kText:
      ok = std::holds_alternative<std::string>(v);
      break;
  }
  BP_CHECK_ARG(ok, key << " must be " << describe_range() << ", got " << quoted(v));
}

FieldValue FieldSpec::parse(const std::string& text) const {
  const auto bad = [&]() -> FieldValue {
    BP_CHECK_ARG(false, flag() << " must be " << describe_range() << ", got '" << text << "'");
    return {};
  };
  // The field's check, with the message naming the flag as it was given.
  const auto checked = [&](const FieldValue& v) -> FieldValue {
    try {
      check(v);
    } catch (const Error&) {
      return bad();
    }
    return v;
  };
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const bool number = kind == FieldKind::kInt || kind == FieldKind::kUInt ||
                      kind == FieldKind::kFloat || kind == FieldKind::kDouble;
  if (number && !is_decimal(text)) return bad();
  switch (kind) {
    case FieldKind::kInt:
    case FieldKind::kUInt: {
      FieldValue v;
      if (kind == FieldKind::kUInt && !text.empty() && text[0] != '-') {
        const unsigned long long u = std::strtoull(begin, &end, 10);
        v = static_cast<uint64_t>(u);
      } else {
        const long long i = std::strtoll(begin, &end, 10);
        v = static_cast<int64_t>(i);
      }
      if (text.empty() || errno != 0 || *end != '\0') {
        // Not a plain integer: 5e7 is still one, 32.9 is not.
        errno = 0;
        const double d = std::strtod(begin, &end);
        if (text.empty() || errno != 0 || *end != '\0') return bad();
        v = d;
      }
      return checked(v);
    }
    case FieldKind::kFloat:
    case FieldKind::kDouble: {
      const double d = std::strtod(begin, &end);
      if (text.empty() || *end != '\0' || (errno != 0 && !std::isfinite(d))) return bad();
      const FieldValue v = checked(d);
      if (kind == FieldKind::kFloat) return static_cast<float>(d);
      return v;
    }
    case FieldKind::kBool: {
      if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
      if (text == "false" || text == "0" || text == "no" || text == "off") return false;
      return bad();
    }
    case FieldKind::kChoice:
    case FieldKind::kText: {
      return checked(text);
    }
  }
  return bad();
}

std::string to_string(const FieldValue& v) {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          os << (x ? "true" : "false");
        } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          os.precision(std::is_same_v<T, float> ? 9 : 17);
          os << x;
          // Shortest text that reads back to the same value.
          for (int p = 1; p <= (std::is_same_v<T, float> ? 9 : 17); ++p) {
            std::ostringstream t;
            t.precision(p);
            t << x;
            if (static_cast<T>(std::strtod(t.str().c_str(), nullptr)) == x) {
              os.str(t.str());
              break;
            }
          }
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

int64_t field_int(const FieldValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<int64_t>(*u);
  return static_cast<int64_t>(as_double(v));
}

uint64_t field_uint(const FieldValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<uint64_t>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v)) return *u;
  return static_cast<uint64_t>(as_double(v));
}

double field_real(const FieldValue& v) { return as_double(v); }
bool field_bool(const FieldValue& v) { return std::get<bool>(v); }
const std::string& field_word(const FieldValue& v) { return std::get<std::string>(v); }

}  // namespace batchpole
