#include "tests/emulator/message_schema.h"

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace runway::emulator {
namespace {

// Field kinds. A leading "[]" means repeated; a name starting with an upper-case letter is a
// nested message; "enum:A|B" lists the values; "any" accepts any JSON (fields the emulator stores
// but does not interpret).
using Fields = std::map<std::string, std::string>;

const std::map<std::string, Fields>& Messages() {
  static const auto* messages = new std::map<std::string, Fields>{
      {"Service",
       {{"name", "string"},
        {"description", "string"},
        {"uid", "string"},
        {"generation", "int64"},
        {"labels", "map"},
        {"annotations", "map"},
        {"createTime", "string"},
        {"updateTime", "string"},
        {"deleteTime", "string"},
        {"expireTime", "string"},
        {"creator", "string"},
        {"lastModifier", "string"},
        {"client", "string"},
        {"clientVersion", "string"},
        {"ingress",
         "enum:INGRESS_TRAFFIC_UNSPECIFIED|INGRESS_TRAFFIC_ALL|INGRESS_TRAFFIC_INTERNAL_ONLY|"
         "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER|INGRESS_TRAFFIC_NONE"},
        {"launchStage",
         "enum:LAUNCH_STAGE_UNSPECIFIED|UNIMPLEMENTED|PRELAUNCH|EARLY_ACCESS|ALPHA|BETA|GA|"
         "DEPRECATED"},
        {"binaryAuthorization", "any"},
        {"template", "RevisionTemplate"},
        {"traffic", "[]TrafficTarget"},
        {"scaling", "ServiceScaling"},
        {"defaultUriDisabled", "bool"},
        {"customAudiences", "[]string"},
        {"observedGeneration", "int64"},
        {"terminalCondition", "any"},
        {"conditions", "[]any"},
        {"latestReadyRevision", "string"},
        {"latestCreatedRevision", "string"},
        {"trafficStatuses", "[]any"},
        {"uri", "string"},
        {"urls", "[]string"},
        {"satisfiesPzs", "bool"},
        {"threatDetectionEnabled", "bool"},
        {"reconciling", "bool"},
        {"etag", "string"},
        {"buildConfig", "any"},
        {"iapEnabled", "bool"},
        {"invokerIamDisabled", "bool"}}},
      {"RevisionTemplate",
       {{"revision", "string"},
        {"labels", "map"},
        {"annotations", "map"},
        {"scaling", "RevisionScaling"},
        {"vpcAccess", "any"},
        {"timeout", "duration"},
        {"serviceAccount", "string"},
        {"containers", "[]Container"},
        {"volumes", "[]any"},
        {"executionEnvironment",
         "enum:EXECUTION_ENVIRONMENT_UNSPECIFIED|EXECUTION_ENVIRONMENT_GEN1|"
         "EXECUTION_ENVIRONMENT_GEN2"},
        {"encryptionKey", "string"},
        {"maxInstanceRequestConcurrency", "int32"},
        {"serviceMesh", "any"},
        {"encryptionKeyRevocationAction", "string"},
        {"encryptionKeyShutdownDuration", "duration"},
        {"sessionAffinity", "bool"},
        {"healthCheckDisabled", "bool"},
        {"nodeSelector", "any"},
        {"gpuZonalRedundancyDisabled", "bool"}}},
      {"RevisionScaling", {{"minInstanceCount", "int32"}, {"maxInstanceCount", "int32"}}},
      {"ServiceScaling",
       {{"minInstanceCount", "int32"},
        {"maxInstanceCount", "int32"},
        {"manualInstanceCount", "int32"},
        {"scalingMode", "enum:SCALING_MODE_UNSPECIFIED|AUTOMATIC|MANUAL"}}},
      {"Container",
       {{"name", "string"},
        {"image", "string"},
        {"command", "[]string"},
        {"args", "[]string"},
        {"env", "[]EnvVar"},
        {"resources", "ResourceRequirements"},
        {"ports", "[]ContainerPort"},
        {"volumeMounts", "[]any"},
        {"workingDir", "string"},
        {"livenessProbe", "any"},
        {"startupProbe", "any"},
        {"dependsOn", "[]string"},
        {"baseImageUri", "string"},
        {"buildInfo", "any"}}},
      {"EnvVar", {{"name", "string"}, {"value", "string"}, {"valueSource", "any"}}},
      {"ResourceRequirements",
       {{"limits", "map"}, {"cpuIdle", "bool"}, {"startupCpuBoost", "bool"}}},
      {"ContainerPort", {{"name", "string"}, {"containerPort", "int32"}}},
      {"TrafficTarget",
       {{"type",
         "enum:TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED|TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST|"
         "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"},
        {"revision", "string"},
        {"percent", "int32"},
        {"tag", "string"}}},
  };
  return *messages;
}

std::string Shown(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

bool IsInteger(const Json& value, int64_t min, int64_t max) {
  if (value.is_number_integer()) {
    if (value.is_number_unsigned()) return value.get<uint64_t>() <= static_cast<uint64_t>(max);
    int64_t v = value.get<int64_t>();
    return v >= min && v <= max;
  }
  if (value.is_number_float()) {
    double v = value.get<double>();
    return v == static_cast<double>(static_cast<int64_t>(v)) && v >= static_cast<double>(min) &&
           v <= static_cast<double>(max);
  }
  if (value.is_string()) {  // proto3 JSON accepts integers as strings
    const std::string& s = value.get_ref<const std::string&>();
    if (s.empty() || s.size() > 20) return false;
    size_t start = s[0] == '-' ? 1 : 0;
    if (start == s.size()) return false;
    for (size_t i = start; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
    }
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    return errno == 0 && v >= min && v <= max;
  }
  return false;
}

void CheckValue(const Json& value, const std::string& kind, const std::string& path,
                std::vector<FieldViolation>& out, int depth);

void CheckFields(const Json& value, const Fields& fields, const std::string& path,
                 std::vector<FieldViolation>& out, int depth) {
  if (!value.is_object()) {
    out.push_back({path, absl::StrCat("Invalid value at '", path, "', ", Shown(value),
                                      ": expected an object")});
    return;
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    auto field = fields.find(it.key());
    if (field == fields.end()) {
      out.push_back({path, absl::StrCat("Invalid JSON payload received. Unknown name \"", it.key(),
                                        "\" at '", path, "': Cannot find field.")});
      continue;
    }
    CheckValue(it.value(), field->second, absl::StrCat(path, ".", it.key()), out, depth + 1);
  }
}

void CheckValue(const Json& value, const std::string& kind, const std::string& path,
                std::vector<FieldViolation>& out, int depth) {
  if (value.is_null() || kind == "any") return;  // null means "unset" in proto3 JSON
  if (depth > 16) {
    out.push_back({path, "nesting too deep"});
    return;
  }
  auto bad = [&](const char* type) {
    out.push_back(
        {path, absl::StrCat("Invalid value at '", path, "' (", type, "), ", Shown(value))});
  };
  if (kind.rfind("[]", 0) == 0) {
    if (!value.is_array()) return bad("repeated");
    for (size_t i = 0; i < value.size(); ++i) {
      CheckValue(value[i], kind.substr(2), absl::StrCat(path, "[", i, "]"), out, depth + 1);
    }
    return;
  }
  if (kind == "string") {
    if (!value.is_string()) bad("TYPE_STRING");
  } else if (kind == "bool") {
    if (!value.is_boolean()) bad("TYPE_BOOL");
  } else if (kind == "int32") {
    if (!IsInteger(value, INT32_MIN, INT32_MAX)) bad("TYPE_INT32");
  } else if (kind == "int64") {
    if (!IsInteger(value, INT64_MIN, INT64_MAX)) bad("TYPE_INT64");
  } else if (kind == "duration") {
    if (!value.is_string() || !ParseProtoDuration(value.get_ref<const std::string&>())) {
      bad("google.protobuf.Duration");
    }
  } else if (kind == "map") {
    if (!value.is_object()) return bad("map<string, string>");
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!it.value().is_string()) {
        out.push_back({absl::StrCat(path, "[", it.key(), "]"),
                       absl::StrCat("Invalid value at '", path, "[", it.key(), "]' (TYPE_STRING), ",
                                    Shown(it.value()))});
      }
    }
  } else if (kind.rfind("enum:", 0) == 0) {
    std::string allowed = kind.substr(5);
    bool ok = false;
    if (value.is_string()) {
      const std::string& s = value.get_ref<const std::string&>();
      size_t start = 0;
      while (start <= allowed.size()) {
        size_t end = allowed.find('|', start);
        if (end == std::string::npos) end = allowed.size();
        if (allowed.compare(start, end - start, s) == 0) ok = true;
        start = end + 1;
      }
    }
    if (!ok) {
      out.push_back({path, absl::StrCat("Invalid value at '", path, "', ", Shown(value),
                                        ": expected one of ", allowed)});
    }
  } else {
    auto message = Messages().find(kind);
    if (message == Messages().end()) return;
    CheckFields(value, message->second, path, out, depth);
  }
}

}  // namespace

absl::Status CheckMessage(const Json& value, const std::string& message_type,
                          const std::string& path) {
  std::vector<FieldViolation> violations;
  CheckValue(value, message_type, path, violations, 0);
  if (value.is_null()) {
    violations.push_back({path, "Invalid JSON payload received: the body is empty."});
  }
  if (violations.empty()) return absl::OkStatus();
  std::vector<std::string> texts;
  for (const FieldViolation& v : violations) texts.push_back(v.description);
  if (texts.size() > 5) {
    texts.resize(5);
    texts.push_back(absl::StrCat("and ", violations.size() - 5, " more"));
  }
  return InvalidArgument(absl::StrJoin(texts, "\n"), std::move(violations));
}

}  // namespace runway::emulator
