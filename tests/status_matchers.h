#pragma once

// GMock matcher for absl::Status: EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, "x"))
// holds when the code matches and the message contains the substring.

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"

namespace runway {

MATCHER_P2(StatusIs, code, substring, "") {
  const absl::Status& status = arg;
  *result_listener << "status is " << status;
  return status.code() == code && absl::StrContains(status.message(), substring);
}

}  // namespace runway
