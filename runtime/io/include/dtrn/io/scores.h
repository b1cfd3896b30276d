// JSON Lines scores (docs/request-format.md, "Scores") <-> dtrn::Scores, byte for byte as
// the reference writes them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn/status.h"

namespace dtrn::io {

// One scores line, without the trailing newline, byte for byte as the reference writes it:
// {"id":"r1","scores":[[p,..],..],"logits":[[..],..],"order":[..]}. Numbers with 9
// significant digits (round-trips a float32); a non-finite value is written as null.
std::string ScoresToJsonLine(const std::string& id, const Scores& scores, const std::vector<int>& order);
// Same, appended to *out (lets a caller reuse one buffer).
void AppendScoresJson(const std::string& id, const Scores& scores, const std::vector<int>& order, std::string* out);

// A parsed scores line (goldens, dtrn-run output), for tests and comparisons.
struct ScoresLine {
  std::string id;
  Scores scores;           // logits left empty when the line has none
  std::vector<int> order;  // empty when the line has none
};
Result<ScoresLine> ParseScoresJson(std::string_view line, size_t line_no);
Result<std::vector<ScoresLine>> ReadScoresFile(const std::string& path);

}  // namespace dtrn::io
