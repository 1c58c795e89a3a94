#include "controller/adapters/cloud_build_rest_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace runway {
namespace {

using Call = GoogleApiCaller::Call;
using gapi::Child;
using gapi::Json;
using gapi::PercentEncode;
using gapi::Str;

std::optional<absl::Time> TimeField(const Json& json, const char* key) {
  std::string text = Str(json, key);
  absl::Time time;
  std::string error;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return std::nullopt;
  }
  return time;
}

BuildState BuildFromJson(const Json& json) {
  BuildState build;
  build.id = Str(json, "id");
  build.status = Str(json, "status");
  build.log_url = Str(json, "logUrl");
  const Json& images = Child(Child(json, "results"), "images");
  if (images.is_array() && !images.empty() && images[0].is_object()) {
    build.image_digest = Str(images[0], "digest");
  }
  const Json& failure = Child(json, "failureInfo");
  build.failure_type = Str(failure, "type");
  build.failure_detail = Str(failure, "detail");
  if (build.failure_detail.empty()) build.failure_detail = Str(json, "statusDetail");
  build.create_time = TimeField(json, "createTime");
  build.finish_time = TimeField(json, "finishTime");
  return build;
}

Json BuildBody(const BuildRequest& request, const std::string& docker_builder) {
  Json body = Json::object();
  if (request.git) {
    Json git = {{"url", request.git->url}, {"revision", request.git->revision}};
    if (!request.git->directory.empty()) git["dir"] = request.git->directory;
    body["source"] = {{"gitSource", std::move(git)}};
  } else if (request.storage) {
    Json storage = {{"bucket", request.storage->bucket}, {"object", request.storage->object}};
    if (request.storage->generation) {
      storage["generation"] = absl::StrCat(*request.storage->generation);
    }
    body["source"] = {{"storageSource", std::move(storage)}};
  }
  body["steps"] = Json::array(
      {{{"name", docker_builder},
        {"args", {"build", "--tag", request.image, "--file", request.dockerfile, "."}}}});
  body["images"] = Json::array({request.image});  // Cloud Build pushes these after the steps
  body["tags"] = request.tags;
  body["timeout"] = gapi::ProtoDuration(request.timeout);
  body["options"] = {{"logging", "CLOUD_LOGGING_ONLY"}};
  return body;
}

}  // namespace

CloudBuildRestClient::CloudBuildRestClient(HttpTransport* transport, TokenSource* tokens,
                                           const Clock* clock, Sleeper* sleeper,
                                           CloudBuildRestClientOptions options)
    : caller_(transport, tokens, clock, sleeper, options),
      location_(options.location),
      docker_builder_(options.docker_builder) {}

std::string CloudBuildRestClient::Parent(const std::string& project) const {
  return absl::StrCat("projects/", project, "/locations/", location_);
}

absl::StatusOr<BuildState> CloudBuildRestClient::CreateBuild(const BuildRequest& request) {
  Call call("builds.create", Parent(request.project), request.project, /*write=*/true);
  if (request.project.empty() || request.image.empty() ||
      request.git.has_value() == request.storage.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "a project, an image and exactly one source are required"));
  }
  call.retryable = false;
  call.request.method = "POST";
  call.request.url = absl::StrCat("v1/", PercentEncode(call.resource, true), "/builds");
  call.request.headers["Content-Type"] = "application/json";
  call.request.body = gapi::Dump(BuildBody(request, docker_builder_));
  call.request.timeout = caller_.options().call_timeout;
  const std::string prefix = call.Prefix();
  absl::StatusOr<Json> operation = caller_.ExecuteJson(std::move(call));
  if (!operation.ok()) return operation.status();
  const Json& build = Child(Child(*operation, "metadata"), "build");
  if (!build.is_object() || Str(build, "id").empty()) {
    return absl::InternalError(
        absl::StrCat(prefix, "the operation carries no metadata.build with an id"));
  }
  return BuildFromJson(build);
}

absl::StatusOr<BuildState> CloudBuildRestClient::GetBuild(const std::string& project,
                                                          const std::string& build_id) {
  Call call("builds.get", absl::StrCat(Parent(project), "/builds/", build_id), project);
  if (project.empty() || build_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(call.Prefix(), "project and build id are required"));
  }
  call.request.method = "GET";
  call.request.url = absl::StrCat("v1/", PercentEncode(call.resource, true));
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> build = caller_.ExecuteJson(std::move(call));
  if (!build.ok()) return build.status();
  return BuildFromJson(*build);
}

absl::StatusOr<std::vector<BuildState>> CloudBuildRestClient::ListBuildsByTag(
    const std::string& project, const std::string& tag) {
  Call call("builds.list", Parent(project), project);
  if (project.empty() || tag.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(call.Prefix(), "project and tag are required"));
  }
  call.request.method = "GET";
  // One page of the newest builds is enough: a source tag names one source, built a few times
  // at most (failures are not retried endlessly).
  call.request.url = absl::StrCat(
      "v1/", PercentEncode(call.resource, true),
      "/builds?pageSize=50&filter=", PercentEncode(absl::StrCat("tags=\"", tag, "\""), false));
  call.request.timeout = caller_.options().call_timeout;
  absl::StatusOr<Json> page = caller_.ExecuteJson(std::move(call));
  if (!page.ok()) return page.status();
  std::vector<BuildState> builds;
  const Json& items = Child(*page, "builds");
  if (items.is_array()) {
    for (const Json& item : items) {
      if (item.is_object()) builds.push_back(BuildFromJson(item));
    }
  }
  return builds;
}

}  // namespace runway
