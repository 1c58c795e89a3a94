#include "controller/adapters/document_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace runway {
namespace {

using ::testing::HasSubstr;

std::vector<ParsedDocument> ReadYamlOk(const std::string& text) {
  absl::StatusOr<std::vector<ParsedDocument>> docs =
      ReadDocuments(text, DocumentFormat::kYaml, DocumentLimits{});
  EXPECT_TRUE(docs.ok()) << docs.status();
  return docs.ok() ? *docs : std::vector<ParsedDocument>{};
}

absl::Status ReadYamlStatus(const std::string& text, DocumentLimits limits = {}) {
  return ReadDocuments(text, DocumentFormat::kYaml, limits).status();
}

TEST(DocumentReaderTest, ConvertsScalarsLikeKubernetes) {
  auto docs = ReadYamlOk(
      "a: 10\nb: '10'\nc: true\nd: yes\ne: 1.5\nf: ~\ng: \"x\"\nh: 0x10\ni: -3\nj: 1e3\n");
  ASSERT_EQ(docs.size(), 1u);
  const nlohmann::json& v = docs[0].value;
  EXPECT_EQ(v["a"], 10);
  EXPECT_EQ(v["b"], "10");
  EXPECT_EQ(v["c"], true);
  EXPECT_EQ(v["d"], "yes");  // YAML 1.2: only true/false are booleans
  EXPECT_EQ(v["e"], 1.5);
  EXPECT_TRUE(v["f"].is_null());
  EXPECT_EQ(v["g"], "x");
  EXPECT_EQ(v["h"], 16);
  EXPECT_EQ(v["i"], -3);
  EXPECT_EQ(v["j"], 1000.0);
}

TEST(DocumentReaderTest, SplitsDocumentsAndKeepsLinesPerFile) {
  auto docs = ReadYamlOk("# header\n---\na: 1\n---\n---\n# only a comment\n---\nb:\n  c: [1, 2]\n");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].index, 1);
  EXPECT_EQ(docs[0].lines.at("a"), 3);
  EXPECT_EQ(docs[1].index, 2);
  EXPECT_EQ(docs[1].lines.at("b"), 8);
  EXPECT_EQ(docs[1].lines.at("b.c"), 9);
}

TEST(DocumentReaderTest, SyntaxErrorInOneDocumentLeavesTheOthers) {
  auto docs = ReadYamlOk("a: 1\n---\nb: [1, 2\n---\nc: 3\n");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_FALSE(docs[0].error.has_value());
  ASSERT_TRUE(docs[1].error.has_value());
  EXPECT_THAT(*docs[1].error, HasSubstr("invalid YAML"));
  EXPECT_GE(docs[1].error_line, 3);
  EXPECT_EQ(docs[2].value["c"], 3);
}

TEST(DocumentReaderTest, DuplicateKeysAreErrors) {
  auto docs = ReadYamlOk("spec:\n  region: a\n  region: b\n");
  ASSERT_EQ(docs.size(), 1u);
  ASSERT_TRUE(docs[0].error.has_value());
  EXPECT_THAT(*docs[0].error, HasSubstr("key \"region\" appears twice in spec"));
  EXPECT_EQ(docs[0].error_line, 3);
}

TEST(DocumentReaderTest, AliasBombIsRefusedQuickly) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char previous = 'a';
  for (char name = 'b'; name <= 'j'; ++name) {
    bomb += std::string(1, name) + ": &" + name + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + previous;
    bomb += "]\n";
    previous = name;
  }
  auto docs = ReadYamlOk(bomb);
  ASSERT_EQ(docs.size(), 1u);
  ASSERT_TRUE(docs[0].error.has_value());
  EXPECT_THAT(*docs[0].error, HasSubstr("expands to more than 200000 values"));
}

TEST(DocumentReaderTest, DeepNestingIsRefusedBeforeParsing) {
  // A megabyte of '[' or of "- " would overflow a recursive parser's stack.
  for (const std::string& unit : {std::string("["), std::string("- "), std::string("{a: ")}) {
    std::string deep;
    while (deep.size() < 500000) deep += unit;
    auto docs = ReadYamlOk(deep);
    ASSERT_EQ(docs.size(), 1u) << unit;
    ASSERT_TRUE(docs[0].error.has_value()) << unit;
    EXPECT_THAT(*docs[0].error, HasSubstr("nesting is deeper than 64 levels")) << unit;
  }
  std::string indented;
  for (int i = 0; i < 200; ++i) indented += std::string(i, ' ') + "k:\n";
  auto docs = ReadYamlOk(indented);
  ASSERT_TRUE(docs[0].error.has_value());
  EXPECT_THAT(*docs[0].error, HasSubstr("nesting is deeper"));
}

TEST(DocumentReaderTest, NestingEstimateIgnoresQuotesCommentsAndBlockScalars) {
  EXPECT_LE(EstimateNestingDepth("a: \"[[[[[[[[\"\nb: '{{{{{{' # [[[[[[\n"), 2);
  EXPECT_LE(EstimateNestingDepth("a: |\n  [[[[[[[[[[[[\n      - - - - - - - -\nb: 1\n"), 2);
  const int depth = EstimateNestingDepth("a:\n  b:\n    c: [1, [2]]\n");
  EXPECT_GE(depth, 4);  // never below the truth: map, map, list, list
  EXPECT_LE(depth, 6);
}

TEST(DocumentReaderTest, FileLevelProblems) {
  DocumentLimits small;
  small.max_file_bytes = 10;
  EXPECT_THAT(std::string(ReadYamlStatus("a: 123456789\n", small).message()),
              HasSubstr("file is 13 bytes, over the 10-byte limit"));
  EXPECT_THAT(std::string(ReadYamlStatus(std::string("a: 1\n\0\x01\x02", 8)).message()),
              HasSubstr("line 2, column 1: byte 0x00: the file looks binary"));
  EXPECT_THAT(std::string(ReadYamlStatus("a: caf\xC3\n").message()),
              HasSubstr("line 1, column 7: invalid UTF-8 (byte 0xC3)"));
  EXPECT_THAT(std::string(ReadYamlStatus("a: \xED\xA0\x80\n").message()),
              HasSubstr("invalid UTF-8"));  // an encoded surrogate
  EXPECT_THAT(std::string(ReadYamlStatus("").message()), HasSubstr("no YAML document"));
  EXPECT_THAT(std::string(ReadYamlStatus("# nothing\n---\n\n").message()),
              HasSubstr("no YAML document"));
  EXPECT_EQ(ReadYamlStatus("\xEF\xBB\xBF"
                           "a: caf\xC3\xA9\n"),
            absl::OkStatus());
}

TEST(DocumentReaderTest, ReadsJsonAndRefusesDuplicateKeys) {
  auto docs = ReadDocuments("{\"a\": {\"b\": [1, 2]}}", DocumentFormat::kJson, {});
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ((*docs)[0].value["a"]["b"][1], 2);
  docs = ReadDocuments("{\"a\": 1,\n \"a\": 2}", DocumentFormat::kJson, {});
  ASSERT_TRUE(docs.ok());
  EXPECT_THAT((*docs)[0].error.value_or(""), HasSubstr("key \"a\" appears twice"));
  docs = ReadDocuments("{\"a\": 1,\n\n \"b\": }", DocumentFormat::kJson, {});
  ASSERT_TRUE(docs.ok());
  EXPECT_THAT((*docs)[0].error.value_or(""), HasSubstr("invalid JSON"));
  EXPECT_EQ((*docs)[0].error_line, 3);
}

TEST(DocumentReaderTest, PathsQuoteKeysThatAreNotIdentifiers) {
  EXPECT_EQ(AppendKey("", "spec"), "spec");
  EXPECT_EQ(AppendKey("spec", "traffic"), "spec.traffic");
  EXPECT_EQ(AppendIndex("spec.traffic", 1), "spec.traffic[1]");
  EXPECT_EQ(AppendKey("labels", "app.kubernetes.io/name"), "labels[\"app.kubernetes.io/name\"]");
}

}  // namespace
}  // namespace runway
