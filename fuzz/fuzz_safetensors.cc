// libFuzzer target: the safetensors reader (converter/safetensors.h) on a byte buffer, then
// the checkpoint's config (dtrn_config metadata) and the tensor set it implies.
// Invariants: no crash, no read outside the buffer (ASan), every refusal names what is wrong;
// whatever is accepted keeps the reader's promises: every tensor inside the buffer, its byte
// count shape x 4, its values finite.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "checkpoint_check.h"
#include "fuzz_support.h"
#include "safetensors.h"

using dtrn::fuzz::Fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto st = dtrn::convert::ParseSafeTensors(data, size);
  if (!st.ok()) {
    if (st.status().message().empty()) Fail("ParseSafeTensors refused without a message");
    return 0;
  }
  for (const auto& [name, t] : st->tensors) {
    if (t.offset > size || t.nbytes > size - t.offset) Fail("tensor '" + name + "' lies outside the buffer");
    uint64_t numel = 1;
    for (int64_t s : t.shape) {
      if (s < 0) Fail("tensor '" + name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(s);
    }
    if (numel * 4 != t.nbytes) Fail("tensor '" + name + "': byte count is not shape x 4");
    for (float x : st->Floats(t))
      if (!std::isfinite(x)) Fail("tensor '" + name + "': a non-finite value was accepted");
  }
  auto config = dtrn::convert::ConfigFromCheckpoint(st.value());
  if (!config.ok()) {
    if (config.status().message().empty()) Fail("ConfigFromCheckpoint refused without a message");
    return 0;
  }
  dtrn::Status check = dtrn::convert::CheckCheckpoint(config.value(), st.value());
  if (!check.ok() && check.message().empty()) Fail("CheckCheckpoint refused without a message");
  return 0;
}
