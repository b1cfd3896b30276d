#include "folding.h"

#include <algorithm>

namespace dtrn::convert {

std::vector<float> FoldHypernetwork(const ModelConfig& c, const SafeTensors& st) {
  const int K = c.K(), B = c.B(), dh = c.hyper_dim, hh = c.hyper_hidden, d = c.d, nln = c.n_ln();
  const int hout = nln * 2 * d;
  const std::vector<float> T = st.Floats(*st.Find("tim.hyper.task_emb"));
  const std::vector<float> S = st.Floats(*st.Find("tim.hyper.behavior_emb"));
  const std::vector<float> W1 = st.Floats(*st.Find("tim.hyper.fc1.weight"));
  const std::vector<float> c1 = st.Floats(*st.Find("tim.hyper.fc1.bias"));
  const std::vector<float> W2 = st.Floats(*st.Find("tim.hyper.fc2.weight"));
  const std::vector<float> c2 = st.Floats(*st.Find("tim.hyper.fc2.bias"));
  std::vector<float> cln(static_cast<size_t>(K) * B * nln * 2 * d);
  std::vector<double> x(2 * dh), hidden(hh), h(hout);
  for (int k = 0; k < K; ++k) {
    for (int b = 0; b < B; ++b) {
      // Double accumulation: the folded values are stored once and used for every request.
      for (int i = 0; i < dh; ++i) {
        x[i] = T[static_cast<size_t>(k) * dh + i];
        x[dh + i] = S[static_cast<size_t>(b) * dh + i];
      }
      for (int j = 0; j < hh; ++j) {
        double acc = c1[j];
        for (int i = 0; i < 2 * dh; ++i) acc += static_cast<double>(W1[static_cast<size_t>(j) * 2 * dh + i]) * x[i];
        hidden[j] = std::max(acc, 0.0);
      }
      for (int o = 0; o < hout; ++o) {
        double acc = c2[o];
        for (int j = 0; j < hh; ++j) acc += static_cast<double>(W2[static_cast<size_t>(o) * hh + j]) * hidden[j];
        h[o] = acc;
      }
      float* out = &cln[(static_cast<size_t>(k) * B + b) * nln * 2 * d];
      for (int l = 0; l < nln; ++l) {
        for (int i = 0; i < d; ++i) {
          out[(l * 2 + 0) * d + i] = static_cast<float>(1.0 + h[l * 2 * d + i]);  // γ = 1 + dγ
          out[(l * 2 + 1) * d + i] = static_cast<float>(h[l * 2 * d + d + i]);    // β
        }
      }
    }
  }
  return cln;
}

}  // namespace dtrn::convert
