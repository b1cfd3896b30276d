// The spec's workloads (small, standard, large) without files: their configs, a checkpoint
// with random weights scaled like trained ones, and synthetic requests shaped like the
// reference's (behaviour sequences of realistic lengths). dtrn-bench --workload builds a
// model from these in memory, so a benchmark needs neither Python nor files on the target.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dtrn/runtime.h"
#include "dtrn/status.h"

namespace dtrn::convert {

// The config JSON of a spec workload (equal to reference/configs/NAME.json; a test checks).
Result<std::string> WorkloadConfig(const std::string& name);
std::vector<std::string> WorkloadNames();

// A checkpoint (safetensors bytes, docs/checkpoint-format.md) for config_json with random
// weights: Xavier-normal linears, N(0, 0.1) embeddings, small biases, hypernetwork and TRM
// outputs near their identity, as a trained model's weights are distributed.
Result<std::vector<uint8_t>> SyntheticCheckpoint(const std::string& config_json, uint64_t seed);

// `count` requests with `candidates` candidates each for `model`: uniform ids, dense values
// N(0, 1), behaviour b's length uniform in [0, round(L (1 - 0.7 b / (B - 1)))] (the
// reference's synthetic world: the first behaviour type longest).
std::vector<Request> SyntheticRequests(const Model& model, size_t count, size_t candidates, uint64_t seed);

}  // namespace dtrn::convert
