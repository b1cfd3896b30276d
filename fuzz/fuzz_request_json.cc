// libFuzzer target: the request JSON parser (runtime/io) on one line, for the example's schema
// with and without seq_fields. The fast SAX path must accept exactly what the DOM walk
// accepts, with the same Request; every refusal is named and starts with the line number; an
// accepted request written back (RequestToJsonLine) parses to the same Request.
// Aborts on any disagreement.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "request_parse.h"

namespace {

using dtrn::fuzz::Fail;

void Check(const dtrn::io::RequestSchema& schema, std::string_view line) {
  dtrn::Request fast;
  const bool fast_ok = dtrn::io::ParseRequestFast(schema, line, &fast);
  auto dom = dtrn::io::ParseRequestDom(schema, line, 5);
  if (fast_ok && !dom.ok()) Fail("the fast path accepts what the DOM walk refuses: " + dom.status().message());
  if (!fast_ok && dom.ok()) Fail("the DOM walk accepts what the fast path refuses");
  if (!dom.ok()) {
    if (dom.status().message().rfind("line 5", 0) != 0) Fail("an error without its line: " + dom.status().message());
    return;
  }
  if (!dtrn::fuzz::SameRequest(fast, dom.value())) Fail("the fast path and the DOM walk parse different requests");
  const std::string again = dtrn::io::RequestToJsonLine(schema, dom.value());
  auto back = dtrn::io::ParseRequestJson(schema, again, 1);
  if (!back.ok()) Fail("RequestToJsonLine wrote a line the parser refuses: " + back.status().message());
  if (!dtrn::fuzz::SameRequest(back.value(), dom.value())) Fail("RequestToJsonLine does not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  Check(dtrn::fuzz::SmallSchema(), line);
  Check(dtrn::fuzz::SmallSeqSchema(), line);
  return 0;
}
