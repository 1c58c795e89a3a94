#pragma once

// spdlog set-up shared by every runway command: level and format (text for people, one JSON
// object per line for machines), always on stderr so stdout stays parseable.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "spdlog/formatter.h"

namespace runway {

enum class LogFormat { kText, kJson };

// A formatter that writes one JSON object per record: {"ts","level","logger","msg"}. The line is
// valid JSON whatever the message holds (quotes, newlines, control characters, invalid UTF-8).
std::unique_ptr<spdlog::formatter> MakeJsonLogFormatter();

// Parses "trace|debug|info|warn|error|critical|off" and "text|json"; kInvalidArgument names the
// bad value and the choices.
absl::Status ConfigureLogging(const std::string& level, const std::string& format);

}  // namespace runway
