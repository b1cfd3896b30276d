#include "model_desc.h"

namespace dtrn::convert {

std::vector<LinearDesc*> ModelDesc::Candidates() {
  std::vector<LinearDesc*> out;
  for (BlockDesc& b : blocks) {
    for (LinearDesc* l : {&b.attn_in, &b.attn_out, &b.ffn1, &b.ffn2}) out.push_back(l);
  }
  if (has_query) out.push_back(&query);
  for (size_t k = 0; k < trm_fc1.size(); ++k) {
    out.push_back(&trm_fc1[k]);
    out.push_back(&trm_fc2[k]);
  }
  for (auto& e : experts) {
    for (LinearDesc& l : e) out.push_back(&l);
  }
  for (LinearDesc& g : gates) out.push_back(&g);
  for (auto& t : towers) {
    for (LinearDesc& l : t) out.push_back(&l);
  }
  return out;
}

LinearDesc* ModelDesc::FindLinear(const std::string& name) {
  for (LinearDesc* l : Candidates()) {
    if (l->name == name) return l;
  }
  for (LinearDesc& p : projection) {
    if (!p.name.empty() && p.name == name) return &p;
  }
  return nullptr;
}

const LinearDesc* ModelDesc::FindLinear(const std::string& name) const {
  return const_cast<ModelDesc*>(this)->FindLinear(name);  // the lookup does not modify
}

int ModelDesc::AddTensor(TensorDesc t) {
  tensors.push_back(std::move(t));
  return static_cast<int>(tensors.size()) - 1;
}

}  // namespace dtrn::convert
