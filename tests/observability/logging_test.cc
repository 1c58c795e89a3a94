#include "controller/observability/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "nlohmann/json.hpp"

namespace runway {
namespace {

TEST(JsonLogFormatterTest, EveryLineIsValidJsonWhateverTheMessageHolds) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("controller", sink);
  logger.set_formatter(MakeJsonLogFormatter());
  const std::vector<std::string> messages = {"plain",
                                             "with \"quotes\" and \\backslash",
                                             "two\nlines\r\n",
                                             std::string("nul\0byte", 8),
                                             "control \x01\x1f\x7f",
                                             "invalid utf-8 \xC3\x28",
                                             "{\"looks\": \"like json\"}"};
  for (const std::string& message : messages) logger.warn("{}", message);
  logger.flush();
  std::istringstream lines(out.str());
  size_t index = 0;
  for (std::string line; std::getline(lines, line); ++index) {
    ASSERT_LT(index, messages.size());
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    EXPECT_EQ(parsed["level"], "warning");
    EXPECT_EQ(parsed["logger"], "controller");
    EXPECT_THAT(parsed["ts"].get<std::string>(),
                ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));
    if (index != 5) {
      EXPECT_EQ(parsed["msg"], messages[index]);
    } else {
      EXPECT_EQ(parsed["msg"], "invalid utf-8 \xEF\xBF\xBD(");  // replaced, still one object
    }
  }
  EXPECT_EQ(index, messages.size());
}

TEST(ConfigureLoggingTest, RejectsUnknownLevelsAndFormats) {
  EXPECT_EQ(ConfigureLogging("verbose", "text").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConfigureLogging("info", "xml").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ConfigureLogging("debug", "json").ok());
  EXPECT_TRUE(spdlog::default_logger()->should_log(spdlog::level::debug));
  EXPECT_TRUE(ConfigureLogging("off", "text").ok());
}

}  // namespace
}  // namespace runway
