// What the libFuzzer targets share (fuzz/README.md): the request schemas of the committed
// example (with and without seq_fields), a field-by-field request comparison, a valid request
// for any loaded model, and a loud stop for a broken invariant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dtrn/io/requests.h"
#include "dtrn/runtime.h"

namespace dtrn::fuzz {

// The schema of examples/small (its config): no seq_fields. SmallSeqSchema: the same with
// seq_fields ["category"] (behaviour sequences in the object form).
const io::RequestSchema& SmallSchema();
const io::RequestSchema& SmallSeqSchema();

// Field for field, floats bit for bit.
bool SameRequest(const Request& a, const Request& b);

// A request every model accepts: id 0 in every sparse field (every table has a row 0),
// zeros in every dense field, three events per behaviour, `n` candidates.
Request ValidRequest(const Model& model, size_t n);

// Prints what broke and aborts (libFuzzer records the input as a crash).
[[noreturn]] void Fail(const std::string& what);

}  // namespace dtrn::fuzz
