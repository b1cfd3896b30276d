// Folds the TIM hypernetwork: h = W2 · relu(W1 · [T_k ; S_b] + c1) + c2 depends only on
// (task k, behaviour b), so it is evaluated once here and only the resulting LayerNorm
// parameters ship: cln [K, B, n_ln, 2, d] F32, (γ = 1 + dγ, β) per LayerNorm.
#pragma once

#include <vector>

#include "config.h"
#include "safetensors.h"

namespace dtrn::convert {

// The checkpoint must already have passed CheckCheckpoint (shapes are trusted).
std::vector<float> FoldHypernetwork(const ModelConfig& c, const SafeTensors& st);

}  // namespace dtrn::convert
