// libFuzzer target: a .dtrn file from bytes (Model::FromBuffer), three ways: as given with the
// checksum (the default), as given without it (the fast path: header checksum, FlatBuffer
// verifier and every semantic check), and with both checksums repaired first, so that the
// fuzzer's changes to the header and the FlatBuffer reach the verifier with the checksum on.
// A model that loads scores a fixed valid request (fuzz_support.h): it may produce any number
// (the weights are fuzzed too) but must not crash, and Session::Create and Score may refuse
// only with a message.
// Invariants: no crash, no out-of-bounds read (ASan), no UB (UBSan), every refusal named.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dtrn_format.h"
#include "fuzz_support.h"

namespace {

using dtrn::fuzz::Fail;

void LoadAndScore(const uint8_t* data, size_t size, bool checksum) {
  dtrn::LoadOptions options;
  options.verify_checksum = checksum;
  auto model = dtrn::Model::FromBuffer(data, size, options);
  if (!model.ok()) {
    if (model.status().message().empty()) Fail("FromBuffer refused without a message");
    return;
  }
  auto session = dtrn::Session::Create(model.value());
  if (!session.ok()) {
    if (session.status().message().empty()) Fail("Session::Create failed without a message");
    return;
  }
  dtrn::Scores scores;
  const dtrn::Request request = dtrn::fuzz::ValidRequest(*model.value(), 3);
  dtrn::Status st = (*session)->Score(request, &scores);
  if (!st.ok() && st.message().empty()) Fail("Score failed without a message");
  if (st.ok() && (scores.num_candidates != 3 || scores.probabilities.size() != 3 * model.value()->tasks().size()))
    Fail("scores of the wrong shape");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  LoadAndScore(data, size, /*checksum=*/true);
  LoadAndScore(data, size, /*checksum=*/false);
  // Repaired: body checksum at bytes 48-55, header checksum (of bytes 0-55) at 56-63.
  if (size >= dtrn::format::kHeaderSize && std::memcmp(data, dtrn::format::kMagic, 4) == 0) {
    std::vector<uint8_t> fixed(data, data + size);
    const uint64_t body = dtrn::format::Checksum(fixed.data() + 64, size - 64);
    std::memcpy(fixed.data() + 48, &body, 8);
    const uint64_t header = dtrn::format::Checksum(fixed.data(), 56);
    std::memcpy(fixed.data() + 56, &header, 8);
    LoadAndScore(fixed.data(), fixed.size(), /*checksum=*/true);
  }
  return 0;
}
