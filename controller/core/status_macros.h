#pragma once

// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr. Debian 12's abseil
// (20220623) predates absl/status/status_macros.h, so the project keeps its own copy.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RUNWAY_STATUS_CONCAT_INNER(a, b) a##b
#define RUNWAY_STATUS_CONCAT(a, b) RUNWAY_STATUS_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)               \
  do {                                      \
    ::absl::Status runway_status_ = (expr); \
    if (!runway_status_.ok()) {             \
      return runway_status_;                \
    }                                       \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(RUNWAY_STATUS_CONCAT(runway_statusor_, __LINE__), lhs, expr)

#define ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                          \
  if (!statusor.ok()) {                            \
    return std::move(statusor).status();           \
  }                                                \
  lhs = *std::move(statusor)
