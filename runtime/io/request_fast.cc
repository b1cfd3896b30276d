// Fast path of ParseRequestJson: nlohmann-json's SAX events straight into a Request, no DOM
// (about 3x faster on `standard` requests). It accepts only what the DOM walk accepts and
// builds the same Request; on anything unexpected it gives up, and the DOM walk reparses
// the line to say what is wrong and where.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "json_util.h"
#include "request_parse.h"

namespace dtrn::io {
namespace {

using json = nlohmann::json;

// kSeqObj: one behaviour in the object form (models with seq_fields), its keys item_id then
// the seq fields; kSeq: an array of ids (a sequence, or one key of kSeqObj).
enum class Ctx { kTop, kGroup, kDense, kBehaviors, kSeqObj, kSeq, kCandidates, kLabels, kLabelRow, kWeights };
enum TopKey { kId, kUser, kContext, kBehaviors, kCandidates, kLabels, kWeights, kNumTopKeys };
constexpr const char* kTopNames[kNumTopKeys] = {"id",         "user",   "context", "behaviors",
                                                "candidates", "labels", "weights"};
constexpr uint64_t kRequiredTop =
    (1u << kId) | (1u << kUser) | (1u << kContext) | (1u << kBehaviors) | (1u << kCandidates);

struct Frame {
  Ctx ctx;
  uint64_t seen = 0;                               // objects: keys seen, by index
  int pending = -1;                                // objects: index of the key whose value comes next
  size_t count = 0;                                // arrays: elements so far
  const std::vector<FieldInfo>* fields = nullptr;  // kGroup
  std::vector<FieldValue>* values = nullptr;       // kGroup
  std::vector<float>* floats = nullptr;            // kDense, kLabelRow, kWeights
  std::vector<int64_t>* ids = nullptr;             // kSeq
  size_t width = 0;                                // kDense, kLabelRow, kWeights: exact length
  size_t behavior = 0;                             // kSeqObj: which behaviour
  size_t seq_len = SIZE_MAX;                       // kSeqObj: the first array's length (all must match)
};

class Handler {
 public:
  Handler(const RequestSchema& s, Request* r) : s_(s), r_(r) {}

  // Whole-document checks the events cannot make on their own.
  bool Finish() const {
    if (!done_) return false;
    if (has_labels_ && r_->labels.size() != r_->candidates.size()) return false;
    return true;
  }

  bool null() { return false; }  // never valid (labels / weights: omit the key instead)
  bool boolean(bool) { return false; }
  bool binary(json::binary_t&) { return false; }

  bool number_integer(int64_t v) { return Id(v) || Number(static_cast<double>(v)) || IdText(std::to_string(v)); }
  bool number_unsigned(uint64_t v) {
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) && Id(static_cast<int64_t>(v))) return true;
    return Number(static_cast<double>(v)) || IdText(std::to_string(v));
  }
  bool number_float(double v, const std::string&) { return Number(v); }
  bool string(std::string& v) { return IdText(std::move(v)); }

  bool start_object(size_t) {
    if (stack_.empty()) {
      if (done_) return false;
      stack_.push_back({Ctx::kTop});
      return true;
    }
    Frame& f = stack_.back();
    if (f.ctx == Ctx::kTop && (f.pending == kUser || f.pending == kContext)) {
      const bool user = f.pending == kUser;
      PushGroup(user ? s_.user : s_.context, user ? &r_->user : &r_->context);
      return true;
    }
    if (f.ctx == Ctx::kTop && f.pending == kBehaviors) {
      if (s_.behaviors.size() > 64 || s_.seq_fields.size() > 63) return false;
      r_->behaviors.assign(s_.behaviors.size(), {});
      r_->behavior_side_ids.clear();
      if (!s_.seq_fields.empty())
        r_->behavior_side_ids.assign(s_.behaviors.size(), std::vector<std::vector<int64_t>>(s_.seq_fields.size()));
      stack_.push_back({Ctx::kBehaviors});
      return true;
    }
    if (f.ctx == Ctx::kBehaviors && f.pending >= 0 && !s_.seq_fields.empty()) {
      Frame q{Ctx::kSeqObj};
      q.behavior = static_cast<size_t>(f.pending);
      stack_.push_back(q);
      return true;
    }
    if (f.ctx == Ctx::kCandidates) {
      ++f.count;
      r_->candidates.emplace_back();
      PushGroup(s_.item, &r_->candidates.back());
      return true;
    }
    return false;
  }

  bool key(std::string& k) {
    Frame& f = stack_.back();
    int index = -1;
    if (f.ctx == Ctx::kTop) {
      for (int i = 0; i < kNumTopKeys; ++i)
        if (k == kTopNames[i]) index = i;
    } else if (f.ctx == Ctx::kGroup) {
      for (size_t i = 0; i < f.fields->size(); ++i)
        if (k == (*f.fields)[i].name) index = static_cast<int>(i);
    } else if (f.ctx == Ctx::kBehaviors) {
      for (size_t i = 0; i < s_.behaviors.size(); ++i)
        if (k == s_.behaviors[i]) index = static_cast<int>(i);
    } else if (f.ctx == Ctx::kSeqObj) {
      if (k == "item_id") index = 0;
      for (size_t i = 0; i < s_.seq_fields.size(); ++i)
        if (k == s_.seq_fields[i].name) index = static_cast<int>(i + 1);
    }
    if (index < 0 || (f.seen >> index) & 1) return false;  // unknown or duplicate
    f.seen |= uint64_t{1} << index;
    f.pending = index;
    return true;
  }

  bool end_object() {
    Frame& f = stack_.back();
    uint64_t required = 0;
    if (f.ctx == Ctx::kTop)
      required = kRequiredTop;
    else if (f.ctx == Ctx::kGroup)
      required = AllBits(f.fields->size());
    else if (f.ctx == Ctx::kBehaviors)
      required = AllBits(s_.behaviors.size());
    else if (f.ctx == Ctx::kSeqObj)
      required = AllBits(s_.seq_fields.size() + 1);
    if ((f.seen & required) != required) return false;
    stack_.pop_back();
    if (stack_.empty()) {
      done_ = true;
      return true;
    }
    return Consumed();
  }

  bool start_array(size_t) {
    if (stack_.empty()) return false;
    Frame& f = stack_.back();
    if (f.ctx == Ctx::kGroup && f.pending >= 0) {
      const FieldInfo& info = (*f.fields)[f.pending];
      if (info.kind != FieldKind::kDense) return false;
      Frame d{Ctx::kDense};
      d.floats = &(*f.values)[f.pending].dense;
      d.floats->clear();
      d.floats->reserve(info.width);
      d.width = static_cast<size_t>(info.width);
      stack_.push_back(d);
      return true;
    }
    if (f.ctx == Ctx::kBehaviors && f.pending >= 0 && s_.seq_fields.empty()) {
      Frame q{Ctx::kSeq};
      q.ids = &r_->behaviors[f.pending];
      stack_.push_back(q);
      return true;
    }
    if (f.ctx == Ctx::kSeqObj && f.pending >= 0) {
      Frame q{Ctx::kSeq};
      q.ids = f.pending == 0 ? &r_->behaviors[f.behavior] : &r_->behavior_side_ids[f.behavior][f.pending - 1];
      stack_.push_back(q);
      return true;
    }
    if (f.ctx == Ctx::kTop && f.pending == kCandidates) {
      stack_.push_back({Ctx::kCandidates});
      return true;
    }
    if (f.ctx == Ctx::kTop && f.pending == kLabels) {
      has_labels_ = true;
      stack_.push_back({Ctx::kLabels});
      return true;
    }
    if (f.ctx == Ctx::kTop && f.pending == kWeights) {
      Frame w{Ctx::kWeights};
      w.floats = &r_->weights;
      w.width = s_.tasks.size();
      stack_.push_back(w);
      return true;
    }
    if (f.ctx == Ctx::kLabels) {
      ++f.count;
      r_->labels.emplace_back();
      Frame row{Ctx::kLabelRow};
      row.floats = &r_->labels.back();
      row.width = s_.tasks.size();
      stack_.push_back(row);
      return true;
    }
    return false;
  }

  bool end_array() {
    Frame& f = stack_.back();
    if ((f.ctx == Ctx::kDense || f.ctx == Ctx::kLabelRow || f.ctx == Ctx::kWeights) && f.count != f.width) return false;
    if (f.ctx == Ctx::kCandidates && f.count == 0) return false;
    if (f.ctx != Ctx::kDense && f.ctx != Ctx::kSeq && f.ctx != Ctx::kCandidates && f.ctx != Ctx::kLabels &&
        f.ctx != Ctx::kLabelRow && f.ctx != Ctx::kWeights)
      return false;
    const size_t length = f.count;
    const bool seq = f.ctx == Ctx::kSeq;
    stack_.pop_back();
    if (seq && !stack_.empty() && stack_.back().ctx == Ctx::kSeqObj) {  // the object form: equal lengths
      Frame& obj = stack_.back();
      if (obj.seq_len == SIZE_MAX) obj.seq_len = length;
      if (obj.seq_len != length) return false;
    }
    return Consumed();
  }

  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  static uint64_t AllBits(size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }
  bool InTopValue() const { return !stack_.empty() && stack_.back().ctx == Ctx::kTop; }
  int top_pending() const { return stack_.back().pending; }

  void PushGroup(const std::vector<FieldInfo>& fields, std::vector<FieldValue>* values) {
    values->assign(fields.size(), FieldValue());
    Frame g{Ctx::kGroup};
    g.fields = &fields;
    g.values = values;
    stack_.push_back(g);
  }

  // A value was stored for the innermost container: an object's key is used up, an array grows.
  bool Consumed() {
    if (stack_.empty()) return false;
    Frame& f = stack_.back();
    if (f.ctx == Ctx::kTop || f.ctx == Ctx::kGroup || f.ctx == Ctx::kBehaviors || f.ctx == Ctx::kSeqObj) {
      if (f.pending < 0) return false;
      f.pending = -1;
    }
    return true;
  }

  // An integer where an id belongs: a sparse field's value or a sequence element.
  bool Id(int64_t v) {
    if (stack_.empty()) return false;
    Frame& f = stack_.back();
    if (f.ctx == Ctx::kSeq) {
      f.ids->push_back(v);
      ++f.count;
      return true;
    }
    if (f.ctx == Ctx::kGroup && f.pending >= 0 && (*f.fields)[f.pending].kind == FieldKind::kSparse) {
      (*f.values)[f.pending].id = v;
      return Consumed();
    }
    return false;
  }

  // A number where a float belongs: dense values, weights, labels (0 or 1).
  bool Number(double d) {
    if (stack_.empty()) return false;
    Frame& f = stack_.back();
    if (f.ctx != Ctx::kDense && f.ctx != Ctx::kWeights && f.ctx != Ctx::kLabelRow) return false;
    if (f.count >= f.width) return false;
    if (f.ctx == Ctx::kLabelRow) {
      if (d != 0.0 && d != 1.0) return false;
    } else {
      const float x = static_cast<float>(d);
      if (!std::isfinite(d) || !std::isfinite(x)) return false;
    }
    f.floats->push_back(static_cast<float>(d));
    ++f.count;
    return true;
  }

  // The request id: a string, or an integer read as its decimal text.
  bool IdText(std::string v) {
    if (!InTopValue() || top_pending() != kId) return false;
    r_->id = std::move(v);
    return Consumed();
  }

  const RequestSchema& s_;
  Request* r_;
  std::vector<Frame> stack_;
  bool done_ = false;
  bool has_labels_ = false;
};

}  // namespace

bool ParseRequestFast(const RequestSchema& schema, std::string_view line, Request* out) {
  if (schema.user.size() > 64 || schema.context.size() > 64 || schema.item.size() > 64) return false;
  // nlohmann skips a leading byte order mark; the DOM walk refuses it (json_util.h).
  if (line.size() >= 3 && line.substr(0, 3) == "\xEF\xBB\xBF") return false;
  *out = Request();
  Handler h(schema, out);
  try {
    return json::sax_parse(line.begin(), line.end(), &h, json::input_format_t::json, /*strict=*/true,
                           /*ignore_comments=*/false) &&
           h.Finish();
  } catch (...) {  // the DOM walk will report whatever this was
    return false;
  }
}

}  // namespace dtrn::io
