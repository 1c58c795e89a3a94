#include "tests/emulator/build_filter.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace runway::emulator {
namespace {

using nlohmann::json;

// A build with every filterable field set. Real builds carry one source kind only; the filter
// does not care.
json FullBuild() {
  return json::parse(R"({
    "id": "b-1",
    "projectId": "proj",
    "status": "SUCCESS",
    "tags": ["reconciler", "svc-api", "gen-3"],
    "images": ["gcr.io/p/app", "gcr.io/p/sidecar"],
    "results": {"images": [{"name": "gcr.io/p/app", "digest": "sha256:aaa"},
                           {"name": "gcr.io/p/sidecar", "digest": "sha256:bbb"}]},
    "createTime": "2025-06-01T12:00:00.123456Z",
    "startTime": "2025-06-01T12:00:05Z",
    "finishTime": "2025-06-01T12:03:00.5Z",
    "buildTriggerId": "trig-1",
    "options": {"requestedVerifyOption": "VERIFIED"},
    "source": {"repoSource": {"branchName": "main", "commitSha": "abc123", "repoName": "repo",
                              "tagName": "v1"},
               "storageSource": {"bucket": "bkt", "object": "src.tgz"}},
    "sourceProvenance": {"resolvedRepoSource": {"commitSha": "def456"}}
  })");
}

// Whether `filter` matches `build`; a filter that does not parse fails the test.
bool Match(std::string_view filter, const json& build) {
  absl::StatusOr<BuildFilter> parsed = BuildFilter::Parse(filter);
  if (!parsed.ok()) {
    ADD_FAILURE() << "filter " << filter << " did not parse: " << parsed.status();
    return false;
  }
  return parsed->Matches(build);
}

// The message of the InvalidArgument error that parsing `filter` must produce.
std::string ParseError(std::string_view filter) {
  absl::StatusOr<BuildFilter> parsed = BuildFilter::Parse(filter);
  if (parsed.ok()) {
    ADD_FAILURE() << "filter " << filter << " parsed, but an error was expected";
    return "";
  }
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
  return std::string(parsed.status().message());
}

bool Contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

TEST(BuildFilterTest, EmptyAndBlankFiltersMatchEverything) {
  EXPECT_TRUE(Match("", FullBuild()));
  EXPECT_TRUE(Match(" \t\r\n ", json::object()));
  EXPECT_TRUE(BuildFilter().Matches(FullBuild()));
}

TEST(BuildFilterTest, EveryStringKeyReadsItsField) {
  struct Case {
    std::string_view matching;
    std::string_view not_matching;
  };
  const Case cases[] = {
      {R"(build_id="b-1")", R"(build_id="b-2")"},
      {R"(images="gcr.io/p/sidecar")", R"(images="gcr.io/p/other")"},
      {R"(options.requested_verify_option="VERIFIED")",
       R"(options.requested_verify_option="NOT_VERIFIED")"},
      {R"(project_id="proj")", R"(project_id="other")"},
      {R"(results.images.digest="sha256:bbb")", R"(results.images.digest="sha256:ccc")"},
      {R"(results.images.name="gcr.io/p/app")", R"(results.images.name="gcr.io/p/x")"},
      {R"(source_provenance.resolved_repo_source.commit_sha="def456")",
       R"(source_provenance.resolved_repo_source.commit_sha="abc123")"},
      {R"(source.repo_source.branch_name="main")", R"(source.repo_source.branch_name="dev")"},
      {R"(source.repo_source.commit_sha="abc123")", R"(source.repo_source.commit_sha="def456")"},
      {R"(source.repo_source.repo_name="repo")", R"(source.repo_source.repo_name="other")"},
      {R"(source.repo_source.tag_name="v1")", R"(source.repo_source.tag_name="v2")"},
      {R"(source.storage_source.bucket="bkt")", R"(source.storage_source.bucket="src.tgz")"},
      {R"(source.storage_source.object="src.tgz")", R"(source.storage_source.object="bkt")"},
      {R"(status="SUCCESS")", R"(status="FAILURE")"},
      {R"(tags="gen-3")", R"(tags="gen-4")"},
      {R"(trigger_id="trig-1")", R"(trigger_id="b-1")"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(Match(c.matching, FullBuild())) << c.matching;
    EXPECT_FALSE(Match(c.not_matching, FullBuild())) << c.not_matching;
  }
}

TEST(BuildFilterTest, EveryTimeKeyReadsItsField) {
  const json build = FullBuild();
  EXPECT_TRUE(Match(R"(create_time="2025-06-01T12:00:00.123456Z")", build));
  EXPECT_FALSE(Match(R"(create_time="2025-06-01T12:00:05Z")", build));
  EXPECT_TRUE(Match(R"(start_time="2025-06-01T12:00:05Z")", build));
  EXPECT_FALSE(Match(R"(start_time="2025-06-01T12:03:00.5Z")", build));
  EXPECT_TRUE(Match(R"(finish_time="2025-06-01T12:03:00.5Z")", build));
  EXPECT_FALSE(Match(R"(finish_time="2025-06-01T12:00:05Z")", build));
}

TEST(BuildFilterTest, StringOperators) {
  const json build = FullBuild();  // status SUCCESS
  EXPECT_TRUE(Match(R"(status="SUCCESS")", build));
  EXPECT_FALSE(Match(R"(status!="SUCCESS")", build));
  EXPECT_TRUE(Match(R"(status!="FAILURE")", build));
  EXPECT_TRUE(Match(R"(status:"SUCCESS")", build));
  EXPECT_FALSE(Match(R"(status:"SUCC")", build)) << ": is equality, not substring";
  EXPECT_TRUE(Match(R"(status<"T")", build));
  EXPECT_FALSE(Match(R"(status<"SUCCESS")", build));
  EXPECT_TRUE(Match(R"(status<="SUCCESS")", build));
  EXPECT_FALSE(Match(R"(status<="SUCCES")", build));
  EXPECT_TRUE(Match(R"(status>"S")", build));
  EXPECT_FALSE(Match(R"(status>"SUCCESS")", build));
  EXPECT_TRUE(Match(R"(status>="SUCCESS")", build));
  EXPECT_FALSE(Match(R"(status>="SUCCEST")", build));
}

TEST(BuildFilterTest, ValuesAreCaseSensitive) {
  EXPECT_FALSE(Match(R"(status="success")", FullBuild()));
}

TEST(BuildFilterTest, RepeatedFieldsUseAnyAndNoneSemantics) {
  const json build = FullBuild();  // tags reconciler, svc-api, gen-3
  EXPECT_TRUE(Match(R"(tags="svc-api")", build));
  EXPECT_TRUE(Match(R"(tags:"reconciler")", build));
  EXPECT_FALSE(Match(R"(tags:"svc")", build));
  EXPECT_FALSE(Match(R"(tags!="svc-api")", build)) << "one element equals";
  EXPECT_TRUE(Match(R"(tags!="svc-web")", build)) << "no element equals";
  EXPECT_TRUE(Match(R"(tags>"reconciler")", build)) << "svc-api is greater";
  EXPECT_FALSE(Match(R"(tags>"svc-api")", build));
  EXPECT_TRUE(Match(R"(results.images.digest="sha256:aaa")", build));
  EXPECT_FALSE(Match(R"(results.images.digest!="sha256:aaa")", build));
  EXPECT_TRUE(Match(R"(results.images.digest!="sha256:ccc")", build));

  const json no_tags = json::parse(R"({"tags": []})");
  EXPECT_FALSE(Match(R"(tags="svc-api")", no_tags));
  EXPECT_TRUE(Match(R"(tags!="svc-api")", no_tags));
}

TEST(BuildFilterTest, RepeatedFieldsSkipElementsOfOtherTypes) {
  const json build = json::parse(
      R"({"tags": [1, ["b"], "a", null],
          "results": {"images": ["x", {"name": 5}, {"name": "gcr.io/p/app"}]}})");
  EXPECT_TRUE(Match(R"(tags="a")", build));
  EXPECT_FALSE(Match(R"(tags="1")", build));
  EXPECT_FALSE(Match(R"(tags="b")", build)) << "nested arrays are not flattened";
  EXPECT_TRUE(Match(R"(results.images.name="gcr.io/p/app")", build));
  EXPECT_FALSE(Match(R"(results.images.name="5")", build));
  EXPECT_FALSE(Match(R"(results.images.name="x")", build));
}

TEST(BuildFilterTest, MissingStringFieldsHaveNoValue) {
  const json empty = json::object();
  EXPECT_FALSE(Match(R"(status="SUCCESS")", empty));
  EXPECT_FALSE(Match(R"(status:"SUCCESS")", empty));
  EXPECT_FALSE(Match(R"(status<"ZZZ")", empty));
  EXPECT_FALSE(Match(R"(status>="")", empty));
  EXPECT_TRUE(Match(R"(status!="SUCCESS")", empty));
  EXPECT_FALSE(Match(R"(results.images.digest="sha256:aaa")", empty));
  EXPECT_FALSE(Match(R"(source.repo_source.branch_name="main")",
                     json::parse(R"({"source": {"storageSource": {"bucket": "b"}}})")));
  // A field of another JSON type counts as missing.
  EXPECT_FALSE(Match(R"(status="3")", json::parse(R"({"status": 3})")));
  EXPECT_TRUE(Match(R"(status!="3")", json::parse(R"({"status": 3})")));
  EXPECT_FALSE(Match(R"(build_id="b")", json::array({"b"})));
}

TEST(BuildFilterTest, TimesCompareAsInstantsAcrossPrecisionAndOffsets) {
  const json build = json::parse(R"({"createTime": "2025-01-01T00:00:00Z"})");
  EXPECT_TRUE(Match(R"(create_time="2025-01-01T00:00:00Z")", build));
  EXPECT_TRUE(Match(R"(create_time="2025-01-01T00:00:00.000Z")", build));
  EXPECT_TRUE(Match(R"(create_time="2025-01-01T00:00:00.000000000Z")", build));
  EXPECT_TRUE(Match(R"(create_time="2025-01-01T01:00:00+01:00")", build));
  EXPECT_TRUE(Match(R"(create_time="2024-12-31T19:00:00.0-05:00")", build));
  EXPECT_TRUE(Match(R"(create_time:"2025-01-01T01:00:00+01:00")", build));
  EXPECT_FALSE(Match(R"(create_time!="2025-01-01T01:00:00+01:00")", build));
  EXPECT_TRUE(Match(R"(create_time!="2025-01-01T00:00:00.000000001Z")", build));
  EXPECT_FALSE(Match(R"(create_time="2025-01-01T00:00:00.001Z")", build));
  EXPECT_TRUE(Match(R"(create_time<"2025-01-01T00:00:00.001Z")", build));
  EXPECT_FALSE(Match(R"(create_time<"2025-01-01T01:00:00+01:00")", build));
  EXPECT_TRUE(Match(R"(create_time<="2025-01-01T01:00:00+01:00")", build));
  EXPECT_TRUE(Match(R"(create_time>"2024-12-31T23:59:59.999999Z")", build));
  EXPECT_FALSE(Match(R"(create_time>"2025-01-01T00:00:00.000Z")", build));
  EXPECT_TRUE(Match(R"(create_time>="2025-01-01T00:00:00.000Z")", build));
  EXPECT_FALSE(Match(R"(create_time>="2025-01-01T00:00:00.5Z")", build));

  // As text "2025-01-01T00:30:00+01:00" sorts after "2025-01-01T00:00:00Z"; as a time it is
  // 2024-12-31T23:30:00Z, before it.
  const json offset = json::parse(R"({"createTime": "2025-01-01T00:30:00+01:00"})");
  EXPECT_TRUE(Match(R"(create_time<"2025-01-01T00:00:00Z")", offset));
  EXPECT_FALSE(Match(R"(create_time>"2025-01-01T00:00:00Z")", offset));
}

TEST(BuildFilterTest, MissingOrBadTimesNeverMatch) {
  for (const json& build : {json::object(), json::parse(R"({"createTime": "yesterday"})"),
                            json::parse(R"({"createTime": 1735689600})")}) {
    SCOPED_TRACE(build.dump());
    EXPECT_FALSE(Match(R"(create_time="2025-01-01T00:00:00Z")", build));
    EXPECT_FALSE(Match(R"(create_time!="2025-01-01T00:00:00Z")", build));
    EXPECT_FALSE(Match(R"(create_time<"2025-01-01T00:00:00Z")", build));
    EXPECT_FALSE(Match(R"(create_time>"2025-01-01T00:00:00Z")", build));
    EXPECT_FALSE(Match(R"(create_time:*)", build));
    // NOT of a failed comparison holds.
    EXPECT_TRUE(Match(R"(NOT create_time="2025-01-01T00:00:00Z")", build));
  }
}

TEST(BuildFilterTest, HasAnyValue) {
  const json build = FullBuild();
  EXPECT_TRUE(Match("tags:*", build));
  EXPECT_TRUE(Match("status:*", build));
  EXPECT_TRUE(Match("create_time:*", build));
  EXPECT_TRUE(Match("results.images.digest:*", build));
  EXPECT_FALSE(Match("tags:*", json::parse(R"({"tags": []})")));
  EXPECT_FALSE(Match("status:*", json::parse(R"({"status": ""})")));
  EXPECT_FALSE(Match("trigger_id:*", json::object()));
  EXPECT_TRUE(Match("NOT trigger_id:*", json::object()));
  EXPECT_EQ(ParseError("tags=*"),
            "filter: column 6: expected a quoted value after \"=\", found \"*\"");
}

TEST(BuildFilterTest, GcloudExamples) {
  json build = FullBuild();
  build["createTime"] = "2025-03-04T05:06:07.890Z";
  EXPECT_TRUE(Match(R"(tags="reconciler")", build));
  EXPECT_FALSE(Match(R"(tags="reconciler")", json::parse(R"({"tags": ["other"]})")));

  const std::string_view ongoing = R"(status="WORKING" OR status="QUEUED")";
  EXPECT_FALSE(Match(ongoing, build));
  EXPECT_TRUE(Match(ongoing, json::parse(R"({"status": "WORKING"})")));
  EXPECT_TRUE(Match(ongoing, json::parse(R"({"status": "QUEUED"})")));

  const std::string_view nested =
      R"(tags="reconciler" AND (status="SUCCESS" AND )"
      R"((create_time>"2025-01-01T00:00:00.000Z" AND images="gcr.io/p/app")))";
  EXPECT_TRUE(Match(nested, build));
  json old = build;
  old["createTime"] = "2024-12-31T23:59:59Z";
  EXPECT_FALSE(Match(nested, old));
  json failed = build;
  failed["status"] = "FAILURE";
  EXPECT_FALSE(Match(nested, failed));
  json untagged = build;
  untagged["tags"] = json::array({"other"});
  EXPECT_FALSE(Match(nested, untagged));
  json other_image = build;
  other_image["images"] = json::array({"gcr.io/p/web"});
  EXPECT_FALSE(Match(nested, other_image));
}

// With a false, b false, c true: "a AND b OR c" is false under AIP-160 (a AND (b OR c)) and
// would be true under the usual ((a AND b) OR c).
TEST(BuildFilterTest, OrBindsTighterThanAnd) {
  const json build = json::parse(R"({"id": "b", "status": "SUCCESS", "tags": ["c"]})");
  EXPECT_FALSE(Match(R"(build_id="x" AND status="x" OR tags="c")", build));
  EXPECT_TRUE(Match(R"((build_id="x" AND status="x") OR tags="c")", build));
  EXPECT_TRUE(Match(R"(build_id="b" AND status="x" OR tags="c")", build));
  EXPECT_FALSE(Match(R"(tags="c" OR status="x" AND build_id="x")", build));
  EXPECT_TRUE(Match(R"(tags="c" OR (status="x" AND build_id="x"))", build));
}

TEST(BuildFilterTest, JuxtapositionIsAndAndBindsLooserThanOr) {
  const json build = json::parse(R"({"id": "b", "status": "SUCCESS", "tags": ["c"]})");
  EXPECT_TRUE(Match(R"(build_id="b" status="SUCCESS")", build));
  EXPECT_FALSE(Match(R"(build_id="b" status="FAILURE")", build));
  // a b OR c = a AND (b OR c)
  EXPECT_FALSE(Match(R"(build_id="x" status="x" OR tags="c")", build));
  EXPECT_TRUE(Match(R"(build_id="b" status="x" OR tags="c")", build));
  // a OR b c = (a OR b) AND c
  EXPECT_FALSE(Match(R"(tags="c" OR status="x" build_id="x")", build));
  EXPECT_TRUE(Match(R"(build_id="b"status="SUCCESS")", build)) << "no blank needed after a quote";
}

TEST(BuildFilterTest, NotAndMinus) {
  const json build = FullBuild();
  EXPECT_FALSE(Match(R"(NOT status="SUCCESS")", build));
  EXPECT_TRUE(Match(R"(NOT status="FAILURE")", build));
  EXPECT_FALSE(Match(R"(-status="SUCCESS")", build));
  EXPECT_TRUE(Match(R"(-tags="nope")", build));
  EXPECT_TRUE(Match(R"(NOT NOT status="SUCCESS")", build));
  EXPECT_TRUE(Match(R"(NOT -status="SUCCESS")", build));
  EXPECT_FALSE(Match(R"(NOT (status="FAILURE" OR tags="gen-3"))", build));
  EXPECT_TRUE(Match(R"(NOT(status="FAILURE" OR tags="gen-4"))", build));
  EXPECT_TRUE(Match(R"(NOT (NOT status="SUCCESS"))", build));
  EXPECT_FALSE(Match(R"(NOT (NOT status="FAILURE"))", build));
  EXPECT_TRUE(Match(R"(NOT (-status="SUCCESS" OR NOT tags="gen-3"))", build));
  // NOT applies to one term: NOT a OR b = (NOT a) OR b.
  EXPECT_TRUE(Match(R"(NOT status="SUCCESS" OR tags="gen-3")", build));
  EXPECT_FALSE(Match(R"(NOT (status="SUCCESS" OR tags="gen-3"))", build));
  // NOT of a repeated "=" is "!=".
  EXPECT_EQ(Match(R"(NOT tags="svc-api")", build), Match(R"(tags!="svc-api")", build));
}

TEST(BuildFilterTest, LongNotChainsDoNotRecurse) {
  std::string filter;
  for (int i = 0; i < 1000; ++i) filter += "NOT ";
  filter += R"(status="SUCCESS")";  // 1000 NOTs: even, so no negation
  ASSERT_LE(filter.size(), BuildFilter::kMaxLength);
  EXPECT_TRUE(Match(filter, FullBuild()));
  EXPECT_FALSE(Match("-" + filter, FullBuild()));
}

TEST(BuildFilterTest, ParenthesesGroup) {
  const json build = FullBuild();
  EXPECT_TRUE(Match(R"((status="SUCCESS"))", build));
  EXPECT_TRUE(Match(R"(( ( status="SUCCESS" ) ))", build));
  EXPECT_TRUE(Match(R"((status="x" OR tags="gen-3") AND (build_id="b-1"))", build));
  EXPECT_FALSE(Match(R"((status="x" OR tags="gen-3") AND (build_id="b-2"))", build));
}

TEST(BuildFilterTest, ValueForms) {
  json build = FullBuild();
  build["tags"] = json::array({R"(say "hi")", R"(back\slash)", "two words", "AND"});
  EXPECT_TRUE(Match(R"(tags="say \"hi\"")", build));
  EXPECT_TRUE(Match(R"(tags="back\\slash")", build));
  EXPECT_TRUE(Match(R"(tags="two words")", build));
  EXPECT_TRUE(Match(R"(tags="AND")", build)) << "a quoted keyword is a value";
  EXPECT_TRUE(Match(R"(status = "SUCCESS")", build)) << "blanks around the operator";
  EXPECT_TRUE(Match("status=SUCCESS", build));
  EXPECT_FALSE(Match("status=FAILURE", build));
  EXPECT_TRUE(Match("images=gcr.io/p/app", build));
  EXPECT_TRUE(Match("results.images.digest=sha256:aaa", build));
  EXPECT_TRUE(Match("create_time>2025-01-01T00:00:00.000Z", build));
  EXPECT_TRUE(Match("project_id=proj OR build_id=user@example_1-2.x:y/z", build));
  EXPECT_TRUE(
      Match("build_id=user@example_1-2.x:y/z", json::parse(R"({"id": "user@example_1-2.x:y/z"})")));
  EXPECT_TRUE(Match(R"(status="")", json::parse(R"({"status": ""})")));
}

TEST(BuildFilterTest, NestingUpToTheLimitIsAccepted) {
  const int depth = BuildFilter::kMaxDepth;
  const std::string filter =
      std::string(depth, '(') + R"(status="SUCCESS")" + std::string(depth, ')');
  EXPECT_TRUE(Match(filter, FullBuild()));
  EXPECT_FALSE(Match("NOT " + filter, FullBuild()));
}

TEST(BuildFilterTest, FilterIsCopyable) {
  absl::StatusOr<BuildFilter> parsed = BuildFilter::Parse(R"(status="SUCCESS")");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  BuildFilter copy = *parsed;
  parsed = BuildFilter::Parse(R"(status="FAILURE")");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(copy.Matches(FullBuild()));
  EXPECT_FALSE(parsed->Matches(FullBuild()));
}

TEST(BuildFilterErrorTest, UnknownKeyListsTheKeys) {
  EXPECT_EQ(ParseError(R"(status="SUCCESS" AND foo="x")"),
            "filter: unknown key \"foo\"; filterable keys are: build_id, create_time, "
            "finish_time, images, options.requested_verify_option, project_id, "
            "results.images.digest, results.images.name, source.repo_source.branch_name, "
            "source.repo_source.commit_sha, source.repo_source.repo_name, "
            "source.repo_source.tag_name, source.storage_source.bucket, "
            "source.storage_source.object, source_provenance.resolved_repo_source.commit_sha, "
            "start_time, status, tags, trigger_id");
  // camelCase JSON names and substitutions are not filterable.
  EXPECT_TRUE(Contains(ParseError(R"(buildTriggerId="t")"), "unknown key \"buildTriggerId\""));
  EXPECT_TRUE(
      Contains(ParseError(R"(substitutions._TAG="v2")"), "unknown key \"substitutions._TAG\""));
}

TEST(BuildFilterErrorTest, KeywordsAreUppercaseOnly) {
  EXPECT_TRUE(Contains(ParseError(R"(status="SUCCESS" and tags="x")"), "unknown key \"and\""));
  EXPECT_TRUE(Contains(ParseError(R"(status="SUCCESS" or tags="x")"), "unknown key \"or\""));
  EXPECT_TRUE(Contains(ParseError(R"(not status="SUCCESS")"), "unknown key \"not\""));
}

TEST(BuildFilterErrorTest, DanglingOperators) {
  EXPECT_EQ(ParseError("status="),
            "filter: column 8: expected a quoted value after \"=\", found end of filter");
  EXPECT_EQ(ParseError("tags=\"a\" OR status!= "),
            "filter: column 22: expected a quoted value after \"!=\", found end of filter");
  EXPECT_EQ(ParseError("status= AND tags=\"a\""),
            "filter: column 9: expected a quoted value after \"=\", found \"AND\" (quote a "
            "keyword to use it as a value)");
  EXPECT_EQ(ParseError("status==\"a\""),
            "filter: column 8: expected a quoted value after \"=\", found \"=\"");
  EXPECT_EQ(ParseError("status"),
            "filter: column 7: expected an operator (=, !=, :, <, <=, >, >=) after key "
            "\"status\", found end of filter");
  EXPECT_EQ(ParseError("status ! \"a\""),
            "filter: column 8: expected an operator (=, !=, :, <, <=, >, >=) after key "
            "\"status\", found \"!\"");
  EXPECT_EQ(ParseError("status=\"a\" AND"),
            "filter: column 15: expected a key or \"(\" after \"AND\", found end of filter");
  EXPECT_EQ(ParseError("status=\"a\" OR "),
            "filter: column 15: expected a key or \"(\" after \"OR\", found end of filter");
  EXPECT_EQ(ParseError("status=\"a\" AND OR tags=\"b\""),
            "filter: column 16: expected a key or \"(\" after \"AND\", found \"OR\"");
  EXPECT_EQ(ParseError("AND status=\"a\""),
            "filter: column 1: expected a key or \"(\", found \"AND\"");
  EXPECT_EQ(ParseError("NOT"),
            "filter: column 4: expected a key or \"(\" after \"NOT\", found end of filter");
  EXPECT_EQ(ParseError("status=\"a\" -"),
            "filter: column 13: expected a key or \"(\" after \"-\", found end of filter");
  EXPECT_EQ(ParseError("status=\"a\" = \"b\""),
            "filter: column 12: expected a key or \"(\", found \"=\"");
}

TEST(BuildFilterErrorTest, UnterminatedQuotesAndBadEscapes) {
  EXPECT_EQ(ParseError("tags=\"x\" AND status=\"SUCC"),
            "filter: column 21: expected a closing '\"' for the quoted value that starts here, "
            "found end of filter");
  EXPECT_TRUE(Contains(ParseError(R"(status="a\")"), "column 8: expected a closing '\"'"));
  EXPECT_EQ(ParseError(R"(status="a\n")"),
            "filter: column 11: expected \\\" or \\\\ after a backslash in a quoted value, found "
            "\"n\"");
  EXPECT_EQ(ParseError("status=\"a\" \"b\""),
            "filter: column 12: expected a key or \"(\", found '\"'");
}

TEST(BuildFilterErrorTest, Parentheses) {
  EXPECT_EQ(ParseError("()"),
            "filter: column 2: expected a key or \"(\" inside the parentheses, found \")\"");
  EXPECT_EQ(ParseError("status=\"a\" AND (  )"),
            "filter: column 19: expected a key or \"(\" inside the parentheses, found \")\"");
  EXPECT_EQ(ParseError("(status=\"a\" AND (tags=\"b\")"),
            "filter: column 27: expected \")\" to close the \"(\" at column 1, found end of "
            "filter");
  EXPECT_EQ(ParseError("status=\"a\")"),
            "filter: column 11: expected the end of the filter, found \")\" with no matching "
            "\"(\"");
  EXPECT_EQ(ParseError("(status=\"a\" AND)"),
            "filter: column 16: expected a key or \"(\" after \"AND\", found \")\"");
}

TEST(BuildFilterErrorTest, NestingDeeperThanTheLimit) {
  const int depth = BuildFilter::kMaxDepth + 1;
  const std::string filter =
      std::string(depth, '(') + R"(status="SUCCESS")" + std::string(depth, ')');
  EXPECT_EQ(ParseError(filter), "filter: column 33: parentheses nest deeper than 32 levels");
  // Deep nesting far beyond the limit fails the same way instead of exhausting the stack.
  EXPECT_EQ(ParseError(std::string(4000, '(')),
            "filter: column 33: parentheses nest deeper than 32 levels");
}

TEST(BuildFilterErrorTest, LengthLimit) {
  std::string filter = R"(status="SUCCESS")";
  filter.resize(BuildFilter::kMaxLength, ' ');
  EXPECT_TRUE(Match(filter, FullBuild())) << "exactly at the limit";
  filter.push_back(' ');
  EXPECT_EQ(ParseError(filter), "filter: 4097 bytes is longer than the limit of 4096 bytes");
}

TEST(BuildFilterErrorTest, BadTimeValues) {
  EXPECT_EQ(ParseError(R"(create_time>"yesterday")"),
            "filter: column 13: expected an RFC 3339 time such as \"2025-01-01T00:00:00Z\" for "
            "key \"create_time\", found \"yesterday\"");
  EXPECT_TRUE(Contains(ParseError(R"(finish_time<"2025-01-01")"), "for key \"finish_time\""));
  EXPECT_TRUE(
      Contains(ParseError(R"(start_time="2025-01-01T00:00:00")"), "expected an RFC 3339 time"));
}

TEST(BuildFilterErrorTest, UnexpectedBytes) {
  EXPECT_EQ(ParseError(std::string("status=\"a\" \x01")),
            "filter: column 12: expected a key or \"(\", found byte 0x01");
  EXPECT_EQ(ParseError("status=\"a\" AND *"),
            "filter: column 16: expected a key or \"(\" after \"AND\", found \"*\"");
}

}  // namespace
}  // namespace runway::emulator
