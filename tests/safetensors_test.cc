// The strict safetensors reader on good and malformed files. Run under
// AddressSanitizer (cmake -DDTRN_ASAN=ON) to prove no malformed input reads out of bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "safetensors.h"
#include "safetensors_write.h"

namespace dtrn::convert {
namespace {

std::vector<uint8_t> Good() {
  return SerializeSafeTensors({{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {4}, {-1, -2, -3, -4}}, {"empty", {0, 5}, {}}},
                              {{"dtrn_format", "1"}, {"k", "v"}});
}

// A file from a raw header string and `data_bytes` bytes of data (values 1.0f).
std::vector<uint8_t> Raw(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t len = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  const float one = 1.f;
  for (size_t i = 0; i + 4 <= data_bytes; i += 4) std::memcpy(out.data() + 8 + header.size() + i, &one, 4);
  return out;
}

Status Parse(const std::vector<uint8_t>& b) { return ParseSafeTensors(b.data(), b.size()).status(); }

void ExpectError(const std::vector<uint8_t>& b, const std::string& needle) {
  Status s = Parse(b);
  ASSERT_FALSE(s.ok()) << "accepted a malformed file; expected an error mentioning '" << needle << "'";
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(SafeTensors, ReadsGoodFile) {
  std::vector<uint8_t> b = Good();
  auto st = ParseSafeTensors(b.data(), b.size());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->metadata.at("dtrn_format"), "1");
  EXPECT_EQ(st->metadata.at("k"), "v");
  ASSERT_EQ(st->tensors.size(), 3u);
  const StTensor* a = st->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(st->Floats(*a), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(st->Floats(*st->Find("b")), (std::vector<float>{-1, -2, -3, -4}));
  EXPECT_EQ(st->Find("empty")->numel(), 0u);
  EXPECT_EQ(st->Find("nope"), nullptr);
}

TEST(SafeTensors, EveryTruncationIsRefused) {
  const std::vector<uint8_t> b = Good();
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + n);
    EXPECT_FALSE(Parse(cut).ok()) << "prefix of " << n << " bytes accepted";
  }
  ExpectError(std::vector<uint8_t>(b.begin(), b.begin() + 5), "shorter than the 8-byte header length");
  ExpectError(std::vector<uint8_t>(b.begin(), b.end() - 4), "beyond the data section");
}

TEST(SafeTensors, HeaderLengthLies) {
  const std::string h = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_TRUE(Parse(Raw(h, 4)).ok());
  ExpectError(Raw(h, 4, h.size() + 100), "exceeds the file");
  ExpectError(Raw(h, 4, uint64_t{1} << 62), "implausible");
  ExpectError(Raw(h, 4, h.size() - 3), "not valid JSON");
  ExpectError(Raw(h, 4, 0), "not valid JSON");
}

TEST(SafeTensors, OffsetsOutOfBoundsOverlapGapsTrailing) {
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "beyond the data section");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}})", 4),
              "data_offsets");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4), "reversed");
  ExpectError(
      Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12),
      "overlaps");
  ExpectError(
      Raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
          8),
      "overlaps");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "gap");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "trailing");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "data_offsets");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", 4), "data_offsets");
}

TEST(SafeTensors, DtypesAndShapes) {
  ExpectError(Raw(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'F33'");
  Status bf16 = Parse(Raw(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4));
  EXPECT_EQ(bf16.code(), StatusCode::kUnimplemented);
  EXPECT_NE(bf16.message().find("BF16 is not supported"), std::string::npos) << bf16.message();
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "shape needs 3 F32 values");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "not a non-negative integer");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4), "not a non-negative integer");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", 4), "overflows");
  ExpectError(Raw(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "shape");
  ExpectError(Raw(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "dtype");
  ExpectError(Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 4),
              "unknown header key 'extra'");
}

TEST(SafeTensors, StructureErrors) {
  ExpectError(Raw(R"([1,2,3])", 0), "not a JSON object");
  ExpectError(Raw(R"({"a":5})", 0), "not an object");
  ExpectError(Raw(R"({"__metadata__":{"k":1}})", 0), "not a string");
  ExpectError(Raw(R"({"__metadata__":[]})", 0), "__metadata__");
  ExpectError(
      Raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          8),
      "names 'a' twice");
  ExpectError(Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4), "not valid JSON");
  ExpectError(Raw("{\"\xff\xfe\":{}}", 0), "not valid JSON");
  EXPECT_TRUE(Parse(Raw("{}", 0)).ok()) << "an empty checkpoint is well-formed (the config check refuses it)";
}

TEST(SafeTensors, NonFiniteValues) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<uint8_t> b = SerializeSafeTensors({{"w", {3}, {0.f, bad, 1.f}}}, {});
    Status s = Parse(b);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("tensor 'w' has a non-finite value"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("flat index 1"), std::string::npos) << s.message();
  }
}

TEST(SafeTensors, UnalignedDataIsReadCorrectly) {
  // Header of odd length: tensor data starts at an address that is not 4-byte aligned.
  std::string h = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  while ((8 + h.size()) % 4 != 2) h += ' ';
  std::vector<uint8_t> b = Raw(h, 12);
  auto st = ParseSafeTensors(b.data(), b.size());
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->Floats(*st->Find("a")), (std::vector<float>{1, 1, 1}));
}

// Random corruption of a valid file: must never crash or read out of bounds (ASan), and
// whatever is accepted must be internally consistent.
TEST(SafeTensors, RandomCorruptionNeverCrashes) {
  const std::vector<uint8_t> good = Good();
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t pos = rng() % b.size();
      b[pos] = static_cast<uint8_t>(rng() % 3 == 0 ? b[pos] ^ (1u << (rng() % 8)) : rng());
    }
    if (rng() % 8 == 0) b.resize(rng() % b.size());
    auto st = ParseSafeTensors(b.data(), b.size());
    if (!st.ok()) continue;
    ++accepted;
    for (const auto& kv : st->tensors) {
      ASSERT_LE(kv.second.offset + kv.second.nbytes, b.size());
      for (float v : st->Floats(kv.second)) ASSERT_TRUE(std::isfinite(v));
    }
  }
  EXPECT_GT(accepted, 0) << "some corruptions only touch values and must still parse";
}

}  // namespace
}  // namespace dtrn::convert
