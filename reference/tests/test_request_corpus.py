"""The shared request corpus (tests/data/request_corpus.jsonl): the reference accepts exactly the lines
marked accept and refuses the others with a RequestError that names the line, the request (where its id
could be read) and the field. The runtime's test suite runs the same file (see its header)."""
import base64
import functools
import json
import os

import pytest

from dtrn_ref.checkpoint import read_checkpoint
from dtrn_ref.config import load_config
from dtrn_ref.requests_io import RequestError, iter_requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "data", "request_corpus.jsonl")
MODELS = {"small": os.path.join(ROOT, "examples", "small", "model.safetensors")}


def cases():
    with open(CORPUS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@functools.lru_cache(maxsize=None)
def model_config(name):
    path = MODELS[name]
    if os.path.exists(path):  # the committed example's own config (its checkpoint metadata)
        return read_checkpoint(path)[0]
    return load_config(os.path.join(ROOT, "reference", "configs", f"{name}.json"))


def test_corpus_is_well_formed():
    cs = cases()
    assert len(cs) >= 40
    assert len({c["name"] for c in cs}) == len(cs), "case names are unique"
    for c in cs:
        assert set(c) <= {"name", "model", "line", "line_b64", "verdict", "field", "why"}, c["name"]
        assert c["verdict"] in ("accept", "reject") and c["why"] and c["model"] in MODELS, c["name"]
        assert ("line" in c) != ("line_b64" in c), c["name"]
    assert sum(c["verdict"] == "accept" for c in cs) >= 15 and sum(c["verdict"] == "reject" for c in cs) >= 40
    # the configuration the corpus was written for is the committed example's
    assert model_config("small") == load_config(os.path.join(ROOT, "reference", "configs", "small.json"))


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["name"])
def test_corpus_case(tmp_path, case):
    raw = base64.b64decode(case["line_b64"]) if "line_b64" in case else case["line"].encode("utf-8")
    assert b"\n" not in raw, "one request per line"
    path = tmp_path / "r.jsonl"
    path.write_bytes(raw + b"\n")
    cfg = model_config(case["model"])
    if case["verdict"] == "accept":
        reqs = list(iter_requests(path, cfg))
        assert len(reqs) == 1
        return
    with pytest.raises(RequestError) as e:
        list(iter_requests(path, cfg))
    msg = str(e.value)
    assert "line 1" in msg, msg
    if case["field"] is not None:
        assert f"field '{case['field']}'" in msg, msg
        if case["field"] != "id":
            assert 'request "' in msg, msg  # the request's id is named
