#include "trm.h"

#include "kernels.h"

namespace dtrn {

Result<std::unique_ptr<Trm>> Trm::Create(const ModelView& m, WeightCache* cache) {
  std::unique_ptr<Trm> t(new Trm(m));
  t->d_ = m.d;
  t->K_ = m.K;
  t->B_ = m.B;
  t->F_ = m.F;
  t->n_ = m.n;
  for (const TrmSpec& spec : m.trm) {
    DTRN_ASSIGN_OR_RETURN(auto chain, DenseChain::Create({&spec.fc1, &spec.fc2}, cache));
    t->excitation_.push_back(std::move(chain));
  }
  return t;
}

Status Trm::Run(size_t T, const FieldEmbeddings& emb, const Tim& tim, const Exec& x) {
  tile_ = T;
  float* zs = z_.Reserve(T * n_);
  float* ls = logits_.Reserve(T * n_);
  float* as = a_.Reserve(K_ * T * n_);
  if (zs == nullptr || ls == nullptr || as == nullptr) return OutOfMemory("TRM");
  for (size_t k = 0; k < K_; ++k) {
    // Squeeze.
    for (size_t c = 0; c < T; ++c) {
      float* zr = zs + c * n_;
      for (size_t i = 0; i < F_; ++i) zr[i] = emb.Squeeze(static_cast<int>(i), c);
      for (size_t b = 0; b < B_; ++b)
        zr[F_ + b] = kernels::Mean(tim.Interest(static_cast<int>(k), c, static_cast<int>(b)), d_);
    }
    // Excitation.
    DTRN_RETURN_IF_ERROR(excitation_[k]->Run(T, zs, ls, x));
    float* ak = as + k * T * n_;
    kernels::SigmoidRows(T * n_, ls, 2.f, ak);
  }
  return Status::Ok();
}

}  // namespace dtrn
