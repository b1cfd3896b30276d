// A C++ program using the installed dtrn-edge C++ API (dtrn/runtime.h, dtrn/io/*.h):
// scores every request of a JSON Lines file and writes the scores lines exactly as
// dtrn-run does, so tests/install_test.sh can compare the two byte for byte.
//
//   consumer_cpp MODEL.dtrn REQUESTS.jsonl > scores.jsonl
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "dtrn/io/requests.h"
#include "dtrn/io/scores.h"
#include "dtrn/runtime.h"
#include "dtrn/version.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL.dtrn REQUESTS.jsonl\n", argv[0]);
    return 2;
  }
  // The header the app was compiled against and the library it runs with agree.
  if (std::strcmp(dtrn::Version(), DTRN_VERSION_STRING) != 0) {
    std::fprintf(stderr, "library %s, headers %s\n", dtrn::Version(), DTRN_VERSION_STRING);
    return 1;
  }
  auto model = dtrn::Model::Load(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 2;
  }
  auto session = dtrn::Session::Create(*model);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }
  auto reader = dtrn::io::RequestReader::Open(dtrn::io::RequestSchema::FromModel(**model), argv[2]);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 2;
  }
  dtrn::Request request;
  dtrn::Scores scores;
  size_t n = 0;
  for (;;) {
    auto more = (*reader)->Next(&request);
    if (!more.ok()) {
      std::fprintf(stderr, "%s\n", more.status().ToString().c_str());
      return 2;
    }
    if (!*more) break;
    dtrn::Status st = (*session)->Score(request, &scores);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 2;
    }
    auto order = dtrn::Rank(scores, request.weights);
    if (!order.ok()) {
      std::fprintf(stderr, "%s\n", order.status().ToString().c_str());
      return 2;
    }
    std::cout << dtrn::io::ScoresToJsonLine(request.id, scores, *order) << "\n";
    ++n;
  }
  std::fprintf(stderr, "consumer_cpp: dtrn-edge %s (.dtrn format %u), %s: %zu requests, %zu tasks\n", dtrn::Version(),
               dtrn::FormatVersion(), (*model)->name().c_str(), n, (*model)->tasks().size());
  return 0;
}
