"""Writes tests/data/request_corpus.jsonl: the shared corpus of request lines with their verdicts.

    python3 reference/tests/make_request_corpus.py    (from the repository root)

One JSON object per line: {"name", "model": "small", "line": raw request line (a JSON string; absent
when the raw bytes are not valid UTF-8), "line_b64": the raw bytes, base64 (only then),
"verdict": "accept" | "reject", "field": the field a reject's message must name (null when the
line is not a JSON object at all: the message then names the line), "why"}. The model is
examples/small (config reference/configs/small.json). Both test suites run every case: the
reference (reference/tests/test_request_corpus.py) and the runtime.
"""
import base64
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "request_corpus.jsonl")

I63 = 1 << 63
USER = '"user":{"user_id":5,"user_segment":3,"user_profile":[0.1,0.2,0.3,0.4]}'
CTX = '"context":{"hour":13}'
BEH = '"behaviors":{"click":[1,2,3],"cart":[],"purchase":[7]}'
C1 = '{"item_id":5,"category":2,"item_stats":[0.1,0.2,0.3]}'
C2 = '{"item_id":8,"category":1,"item_stats":[0,0,0]}'
CANDS = f'"candidates":[{C1},{C2}]'


def req(rid='"c"', user=USER, ctx=CTX, beh=BEH, cands=CANDS, extra=""):
    parts = [f'"id":{rid}', user, ctx, beh, cands] + ([extra] if extra else [])
    return "{" + ",".join(p for p in parts if p) + "}"


def user(uid="5", seg="3", prof="[0.1,0.2,0.3,0.4]"):
    return f'"user":{{"user_id":{uid},"user_segment":{seg},"user_profile":{prof}}}'


def beh(click="[1,2,3]", cart="[]", purchase="[7]"):
    return f'"behaviors":{{"click":{click},"cart":{cart},"purchase":{purchase}}}'


def cand(item="5", cat="2", stats="[0.1,0.2,0.3]"):
    return f'{{"item_id":{item},"category":{cat},"item_stats":{stats}}}'


CASES = []


def case(name, line, verdict, why, field=None, raw=None):
    CASES.append({"name": name, "line": line, "raw": raw, "verdict": verdict, "field": field, "why": why})


# ---- valid requests ------------------------------------------------------------------------------
case("minimal", req(), "accept", "every required key, two candidates")
case("labels_and_weights", req(extra='"labels":[[1,0],[0,0]],"weights":[1.0,3.0]'), "accept", "optional keys, valid")
case("integer_id", req(rid="12345"), "accept", "a JSON integer id is read as its decimal text")
case("id_uint64_max", req(rid=str((1 << 64) - 1)), "accept",
     "integer ids may be signed or unsigned 64-bit (trace ids are often printed unsigned)")
case("id_int64_min", req(rid=str(-I63)), "accept", "the smallest 64-bit signed integer id")
case("empty_string_id", req(rid='""'), "accept", "an id is any string")
case("unicode_id_raw", req(rid='"caf\u00e9-\u6f22"'), "accept", "UTF-8 in an id")
case("unicode_id_escaped", req(rid='"caf\\u00e9 \\ud83d\\ude00"'), "accept", "escapes, a surrogate pair included")
case("key_order", "{" + ",".join([CANDS, BEH, CTX, USER, '"id":"c"']) + "}", "accept", "key order does not matter")
case("whitespace_and_crlf", "  " + req().replace(",", " ,\t") + " \r", "accept", "JSON whitespace, CRLF line end")
case("hashed_id_int64_max", req(user=user(uid=str(I63 - 1))), "accept", "hashed table: any int64 id")
case("hashed_id_int64_min", req(user=user(uid=str(-I63))), "accept", "hashed table: any int64 id")
case("hashed_id_negative", req(beh=beh(click="[-1,0,1]")), "accept", "hashed item table: negative ids hash")
case("unhashed_id_last_row", req(user=user(seg="999")), "accept", "un-hashed table of 1000: 999 is its last row")
case("unhashed_id_zero", req(user=user(seg="0")), "accept", "0 is an ordinary id")
case("negative_zero_id", req(user=user(seg="-0")), "accept", "-0 is the JSON integer 0")
case("long_sequence_truncated", req(beh=beh(click="[" + ",".join(str(i) for i in range(45)) + "]")), "accept",
     "longer than L = 20: the most recent 20 are kept")
case("dense_integers", req(user=user(prof="[1,2,3,4]")), "accept", "dense values may be JSON integers")
case("dense_float32_max", req(user=user(prof="[3.4028234663852886e38,0,0,0]")), "accept",
     "float32's largest value is finite")
case("dense_underflow", req(user=user(prof="[1e-400,0,0,0]")), "accept", "a tiny number reads as 0, finite")
case("dense_exponent_forms", req(user=user(prof="[1E2,-2.5e-3,0.0,-0]")), "accept", "number syntax")
case("labels_as_floats", req(extra='"labels":[[1.0,0.0],[0,1]]'), "accept", "1.0 and 0.0 are the numbers 1 and 0")
case("weights_negative_and_zero", req(extra='"weights":[-1,0]'), "accept", "any finite float32 weights")
case("weights_float32_max", req(extra='"weights":[3.4028234663852886e38,1]'), "accept", "finite in float32")
case("one_candidate", req(cands=f'"candidates":[{C1}]'), "accept", "N = 1")
case("all_sequences_empty", req(beh=beh(click="[]", cart="[]", purchase="[]")), "accept", "empty sequences are valid")
case("nul_escape_in_id", req(rid='"a\\u0000b"'), "accept", "a valid JSON string (the id has a NUL character)")

# ---- structure -----------------------------------------------------------------------------------
case("not_an_object", "[1,2]", "reject", "a request is a JSON object", None)
case("null_line", "null", "reject", "a request is a JSON object", None)
case("trailing_garbage", req() + " x", "reject", "one JSON value per line", None)
case("two_objects", req() + req(), "reject", "one JSON value per line", None)
case("truncated", req()[:-1], "reject", "invalid JSON", None)
case("missing_id", req(rid="x").replace('"id":x,', ""), "reject", "id is required", "id")
case("id_null", req(rid="null"), "reject", "an id is a string or an integer", "id")
case("id_float", req(rid="1.5"), "reject", "an id is a string or an integer", "id")
case("id_bool", req(rid="true"), "reject", "an id is a string or an integer", "id")
case("id_2_64", req(rid=str(1 << 64)), "reject",
     "no 64-bit integer holds 2^64: send such an id as a string", "id")
case("id_below_int64_min", req(rid=str(-I63 - 1)), "reject", "below -2^63: send such an id as a string", "id")
case("id_lone_surrogate", req(rid='"\\ud800"'), "reject", "a lone surrogate is not Unicode text", "id")
case("unknown_top_key", req(extra='"extra":1'), "reject", "unknown keys are errors", "extra")
case("missing_user", req(user=""), "reject", "user is required", "user")
case("user_not_object", req(user='"user":[5,3]'), "reject", "user is an object", "user")
case("user_missing_field", req(user='"user":{"user_id":5,"user_profile":[0,0,0,0]}'), "reject",
     "every user field is required", "user.user_segment")
case("user_unknown_field", req(user=USER[:-1] + ',"age":3}'), "reject", "unknown fields are errors", "user.age")
case("context_empty", req(ctx='"context":{}'), "reject", "small has a context field (hour)", "context.hour")
case("duplicate_key", req(extra='"id":"d"'), "reject", "a key twice in one object is an error", None)
case("duplicate_key_nested", req(user=USER[:-1] + ',"user_id":6}'), "reject", "duplicate keys at any depth", None)

# ---- ids -----------------------------------------------------------------------------------------
case("id_2_63", req(user=user(uid=str(I63))), "reject", "ids are int64: 2^63 does not fit", "user.user_id")
case("id_below_min", req(user=user(uid=str(-I63 - 1))), "reject", "ids are int64", "user.user_id")
case("id_huge_integer", req(user=user(uid="1" + "0" * 30)), "reject", "ids are int64", "user.user_id")
case("id_as_float", req(user=user(uid="5.0")), "reject", "ids are JSON integers, never read through a double",
     "user.user_id")
case("id_exponent", req(user=user(uid="1e2")), "reject", "1e2 is a number, not an integer token", "user.user_id")
case("id_as_string", req(user=user(uid='"5"')), "reject", "ids are JSON integers", "user.user_id")
case("id_bool_field", req(user=user(uid="true")), "reject", "ids are JSON integers", "user.user_id")
case("id_null_field", req(user=user(uid="null")), "reject", "ids are JSON integers", "user.user_id")
case("unhashed_out_of_range", req(user=user(seg="1000")), "reject",
     "un-hashed table of 1000 rows: 1000 is outside [0, 1000)", "user.user_segment")
case("unhashed_negative", req(user=user(seg="-1")), "reject", "un-hashed: negative ids are outside the table",
     "user.user_segment")
case("unhashed_candidate_out_of_range", req(cands=f'"candidates":[{C1},{cand(cat="1000")}]'), "reject",
     "category is un-hashed (1000 rows)", "candidates[1].category")
case("leading_zero_number", req(user=user(seg="03")), "reject", "leading zeros are not JSON", None)
case("plus_sign_number", req(user=user(seg="+3")), "reject", "a leading + is not JSON", None)

# ---- sequences -----------------------------------------------------------------------------------
case("behavior_missing", req(beh='"behaviors":{"click":[1],"cart":[]}'), "reject",
     "every behaviour type is required", "behaviors.purchase")
case("behavior_unknown", req(beh=BEH[:-1] + ',"like":[1]}'), "reject", "unknown behaviour types are errors",
     "behaviors.like")
case("behavior_not_array", req(beh=beh(cart="5")), "reject", "a sequence is an array", "behaviors.cart")
case("behavior_object_form_without_seq_fields", req(beh=beh(cart='{"item_id":[1]}')), "reject",
     "small has no seq_fields: sequences are plain arrays", "behaviors.cart")
case("sequence_float_id", req(beh=beh(click="[1,2.5]")), "reject", "ids are JSON integers", "behaviors.click[1]")
case("sequence_id_2_63", req(beh=beh(click=f"[1,{I63}]")), "reject", "ids are int64", "behaviors.click[1]")
case("sequence_bad_id_in_dropped_part", req(beh=beh(click='["x",' + ",".join(str(i) for i in range(25)) + "]")),
     "reject", "truncation keeps the last L, but every entry must still be a JSON integer", "behaviors.click[0]")
case("sequence_nested_array", req(beh=beh(click="[[1]]")), "reject", "ids are integers, not arrays",
     "behaviors.click[0]")

# ---- candidates ----------------------------------------------------------------------------------
case("candidates_empty", req(cands='"candidates":[]'), "reject", "N >= 1", "candidates")
case("candidates_not_array", req(cands=f'"candidates":{C1}'), "reject", "candidates is an array", "candidates")
case("candidate_not_object", req(cands=f'"candidates":[{C1},5]'), "reject", "a candidate is an object",
     "candidates[1]")
case("candidate_missing_field", req(cands='"candidates":[{"item_id":5,"item_stats":[0,0,0]}]'), "reject",
     "every item field is required", "candidates[0].category")
case("candidate_unknown_field", req(cands='"candidates":[' + C1[:-1] + ',"brand":1}]'), "reject",
     "unknown item fields are errors", "candidates[0].brand")
case("missing_candidates", req(cands=""), "reject", "candidates is required", "candidates")

# ---- dense values --------------------------------------------------------------------------------
case("dense_too_short", req(user=user(prof="[0.1,0.2,0.3]")), "reject", "user_profile has width 4",
     "user.user_profile")
case("dense_too_long", req(cands=f'"candidates":[{cand(stats="[0,0,0,0]")}]'), "reject", "item_stats has width 3",
     "candidates[0].item_stats")
case("dense_not_array", req(user=user(prof="0.5")), "reject", "a dense value is an array", "user.user_profile")
case("dense_string", req(user=user(prof='[0,"1",0,0]')), "reject", "dense values are numbers",
     "user.user_profile[1]")
case("dense_bool", req(user=user(prof="[0,true,0,0]")), "reject", "dense values are numbers", "user.user_profile[1]")
case("dense_null", req(user=user(prof="[0,null,0,0]")), "reject", "dense values are numbers", "user.user_profile[1]")
case("dense_1e39", req(user=user(prof="[1e39,0,0,0]")), "reject", "finite as a double, not as a float32",
     "user.user_profile[0]")
case("dense_1e400", req(user=user(prof="[0,0,1e400,0]")), "reject",
     "overflows every float type: refused naming the request and the field", "user.user_profile[2]")
case("dense_huge_integer", req(cands=f'"candidates":[{cand(stats="[0," + "9" * 400 + ",0]")}]'), "reject",
     "an integer beyond float32 (and double)", "candidates[0].item_stats[1]")
case("nan_token", req(user=user(prof="[NaN,0,0,0]")), "reject", "NaN is not JSON", None)
case("infinity_token", req(user=user(prof="[Infinity,0,0,0]")), "reject", "Infinity is not JSON", None)
case("minus_infinity_token", req(extra='"weights":[-Infinity,1]'), "reject", "-Infinity is not JSON", None)
case("deep_nesting", req(user=user(prof="[" * 100000 + "]" * 100000)), "reject",
     "nesting this deep is refused (without a crash)", None)
case("nested_garbage_in_dense", req(user=user(prof='[{"a":[1,{"b":2}]},0,0,0]')), "reject",
     "dense values are numbers", "user.user_profile[0]")

# ---- labels --------------------------------------------------------------------------------------
case("labels_null", req(extra='"labels":null'), "reject",
     "labels is optional, but when present it is N arrays of K values; null is not (omit the key)", "labels")
case("labels_wrong_rows", req(extra='"labels":[[1,0]]'), "reject", "one row per candidate (N = 2)", "labels")
case("labels_wrong_width", req(extra='"labels":[[1,0,1],[0,0,0]]'), "reject", "K = 2 values per row", "labels[0]")
case("labels_value_2", req(extra='"labels":[[1,0],[0,2]]'), "reject", "labels are 0 or 1", "labels[1][1]")
case("labels_value_half", req(extra='"labels":[[0.5,0],[0,0]]'), "reject", "labels are 0 or 1", "labels[0][0]")
case("labels_bool", req(extra='"labels":[[true,false],[0,0]]'), "reject", "labels are numbers 0 or 1",
     "labels[0][0]")
case("labels_row_not_array", req(extra='"labels":[1,0]'), "reject", "each row is an array", "labels[0]")

# ---- weights -------------------------------------------------------------------------------------
case("weights_null", req(extra='"weights":null'), "reject",
     "weights is optional, but when present it is K finite numbers; null is not (omit the key for all 1)",
     "weights")
case("weights_wrong_count", req(extra='"weights":[1]'), "reject", "K = 2 weights", "weights")
case("weights_empty", req(extra='"weights":[]'), "reject", "K = 2 weights", "weights")
case("weights_1e39", req(extra='"weights":[1e39,1]'), "reject", "not a finite float32", "weights[0]")
case("weights_1e400", req(extra='"weights":[1,1e400]'), "reject", "overflows: named with the request and field",
     "weights[1]")
case("weights_string", req(extra='"weights":["1",1]'), "reject", "weights are numbers", "weights[0]")
case("weights_huge_integer", req(extra='"weights":[' + "1" * 50 + ',1]'), "reject",
     "an integer beyond float32", "weights[0]")
case("weights_object", req(extra='"weights":{"click":1,"purchase":2}'), "reject", "weights is an array in task order",
     "weights")

# ---- encoding ------------------------------------------------------------------------------------
case("bom_escape_is_not_whitespace", "\ufeff" + req(), "reject",
     "a leading byte order mark (U+FEFF) is refused: JSON Lines text has none (RFC 8259 8.1)", None)
case("bom_bytes", None, "reject", "the raw UTF-8 BOM bytes EF BB BF before the object: refused, as above", None,
     raw=b"\xef\xbb\xbf" + req().encode())
case("invalid_utf8_in_id", None, "reject", "the id holds the byte 0xFF: not UTF-8", None,
     raw=req(rid='"a\xffb"').encode("latin-1"))
case("overlong_utf8", None, "reject", "an overlong encoding (C0 AF) is not valid UTF-8", None,
     raw=b'{"id":"a\xc0\xafb"' + req()[len('{"id":"c"'):].encode())
case("raw_control_character", req(rid='"a\tb"'), "reject", "an unescaped control character in a string", None)


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    names = set()
    with open(OUT, "w", encoding="utf-8") as fh:
        for c in CASES:
            assert c["name"] not in names, c["name"]
            names.add(c["name"])
            o = {"name": c["name"], "model": "small"}
            if c["raw"] is not None:
                o["line_b64"] = base64.b64encode(c["raw"]).decode()
            else:
                o["line"] = c["line"]
            o.update({"verdict": c["verdict"], "field": c["field"], "why": c["why"]})
            fh.write(json.dumps(o, ensure_ascii=True) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
