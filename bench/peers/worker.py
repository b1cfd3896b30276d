"""Timing worker: loads every exported variant of one peer for one candidate count N, checks each against the
goldens, then times requests on command. Runs in the peer's own virtual environment, pinned by the driver.

usage: worker.py PEER --manifest DIR/manifest.json --inputs inputs-N.npz --golden golden-N.npy --n N
Protocol (one JSON object per line): the worker first prints {"ready": {variant: {"ok", "error",
"max_abs_dp", "mean_abs_dp"}}, "versions": ...}; then reads commands
    {"run": VARIANT, "warmup": W, "runs": R}  -> {"wall_ms": [...], "cpu_ms": [...]}
    {"quit": true}
Each timed call scores one whole request (N candidates) from inputs prepared beforehand, cycling over the
requests of the inputs file; wall time by perf_counter, CPU time by the process CPU clock (all threads of the
process, so a runtime that spins helper threads shows CPU > wall).
"""
import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import prep  # noqa: E402
from versions import versions  # noqa: E402

PLAIN_NAMES = None  # set from the inputs file


def _files(variant, n):
    f = variant["files"]
    return f.get(str(n)) or f.get("*")


# ---- adapters: build(variant, n, inputs) -> list of per-request closures returning probs [N, K] -----------

def _split_feeds(inputs, user_names, cand_extra):
    return user_names, cand_extra


class OrtPeer:
    def __init__(self):
        import onnxruntime as ort
        self.ort = ort

    def session(self, path):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self.ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def build(self, variant, n, inputs):
        files = _files(variant, n)
        if "plain" in files:
            s = self.session(files["plain"])
            names = [i.name for i in s.get_inputs()]
            feeds = [dict(zip(names, prep.request(inputs, i, names))) for i in range(prep.num_requests(inputs))]
            return [lambda f=f: s.run(None, f)[0] for f in feeds]
        su, sc = self.session(files["user"]), self.session(files["cand"])
        un = [i.name for i in su.get_inputs()]
        cn = [i.name for i in sc.get_inputs()]
        calls = []
        for i in range(prep.num_requests(inputs)):
            uf = dict(zip(un, prep.request(inputs, i, un)))
            cf = {k: np.ascontiguousarray(inputs[k][i]) for k in cn if k in inputs}

            def call(uf=uf, cf=cf):
                xu, h = su.run(None, uf)
                return sc.run(None, dict(cf, xu=xu, h=h))[0]
            calls.append(call)
        return calls


class OpenvinoPeer:
    def __init__(self):
        import openvino as ov
        self.ov = ov
        self.core = ov.Core()

    def compiled(self, path, shapes):
        m = self.core.read_model(path)
        m.reshape({inp.get_any_name(): shapes[inp.get_any_name()] for inp in m.inputs})
        cfg = {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
               "INFERENCE_PRECISION_HINT": "f32"}
        return self.core.compile_model(m, "CPU", cfg)

    def build(self, variant, n, inputs):
        files = _files(variant, n)
        R = prep.num_requests(inputs)
        if "plain" in files:
            names = [i.get_any_name() for i in self.core.read_model(files["plain"]).inputs]
            c = self.compiled(files["plain"], {k: list(inputs[k].shape[1:]) for k in names})
            req = c.create_infer_request()
            feeds = [dict(zip(names, prep.request(inputs, i, names))) for i in range(R)]
            return [lambda f=f: req.infer(f)[0] for f in feeds]
        un = [i.get_any_name() for i in self.core.read_model(files["user"]).inputs]
        cu = self.compiled(files["user"], {k: list(inputs[k].shape[1:]) for k in un})
        ru = cu.create_infer_request()
        # shapes of xu and h come from the user stage's outputs
        out0 = ru.infer(dict(zip(un, prep.request(inputs, 0, un))))
        xu0, h0 = out0[0], out0[1]
        cn = [i.get_any_name() for i in self.core.read_model(files["cand"]).inputs]
        shapes = {"xu": list(xu0.shape), "h": list(h0.shape)}
        shapes.update({k: list(inputs[k].shape[1:]) for k in cn if k in inputs})
        cc = self.compiled(files["cand"], shapes)
        rc = cc.create_infer_request()
        calls = []
        for i in range(R):
            uf = dict(zip(un, prep.request(inputs, i, un)))
            cf = {k: np.ascontiguousarray(inputs[k][i]) for k in cn if k in inputs}

            def call(uf=uf, cf=cf):
                o = ru.infer(uf)
                return rc.infer(dict(cf, xu=o[0], h=o[1]))[0]
            calls.append(call)
        return calls


class LitertPeer:
    def __init__(self):
        from ai_edge_litert.interpreter import Interpreter
        self.Interpreter = Interpreter

    def runner(self, path):
        it = self.Interpreter(model_path=path, num_threads=1)  # XNNPACK delegate applied by default
        it.allocate_tensors()
        sig = it.get_signature_runner()
        return it, sig

    def build(self, variant, n, inputs):
        files = _files(variant, n)
        R = prep.num_requests(inputs)
        if "plain" in files:
            it, sig = self.runner(files["plain"])
            keys = sorted(sig.get_input_details(), key=_argno)
            feeds = [_typed(sig, keys, prep.request(inputs, i, PLAIN_NAMES)) for i in range(R)]
            out = _only_output(sig)
            return [lambda f=f: sig(**f)[out] for f in feeds]
        _, su = self.runner(files["user"])
        _, sc = self.runner(files["cand"])
        ukeys = sorted(su.get_input_details(), key=_argno)
        ckeys = sorted(sc.get_input_details(), key=_argno)
        uouts = sorted(su.get_output_details(), key=_argno)
        cout = _only_output(sc)
        un = [k for k in PLAIN_NAMES if not k.startswith("cand_")]
        calls = []
        for i in range(R):
            uf = _typed(su, ukeys, prep.request(inputs, i, un))
            cand = _typed(sc, ckeys[2:], [inputs["seq_len"][i]] + [
                inputs[k][i] for k in PLAIN_NAMES if k.startswith("cand_")])

            def call(uf=uf, cand=cand):
                o = su(**uf)
                return sc(**cand, **{ckeys[0]: o[uouts[0]], ckeys[1]: o[uouts[1]]})[cout]
            calls.append(call)
        return calls


def _typed(sig, keys, arrays):
    """Inputs in the dtypes the .tflite expects (litert-torch turns int64 ids into int32), cast beforehand."""
    det = sig.get_input_details()
    return {k: np.ascontiguousarray(a, dtype=det[k]["dtype"]) for k, a in zip(keys, arrays)}


def _argno(name):
    """litert-torch names signature inputs args_0, args_1, ... and outputs output_0, ...: sort numerically."""
    digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
    return (int(digits) if digits else 0, name)


def _only_output(sig):
    outs = list(sig.get_output_details())
    if len(outs) != 1:
        raise RuntimeError(f"expected one output, got {outs}")
    return outs[0]


class ExecutorchPeer:
    def __init__(self):
        import torch
        from executorch.extension.pybindings import portable_lib
        self.torch = torch
        torch.set_num_threads(1)
        # ExecuTorch's XNNPACK threadpool defaults to one thread per core: force one.
        portable_lib._unsafe_reset_threadpool(1)
        self.threads = portable_lib._get_threadpool_size() if hasattr(portable_lib, "_get_threadpool_size") else None
        self.load = portable_lib._load_for_executorch

    def build(self, variant, n, inputs):
        files = _files(variant, n)
        t = self.torch
        R = prep.num_requests(inputs)
        if "plain" in files:
            m = self.load(files["plain"])
            feeds = [[t.from_numpy(a) for a in prep.request(inputs, i, PLAIN_NAMES)] for i in range(R)]
            return [lambda f=f: m.forward(f)[0].numpy() for f in feeds]
        mu, mc = self.load(files["user"]), self.load(files["cand"])
        un = [k for k in PLAIN_NAMES if not k.startswith("cand_")]
        calls = []
        for i in range(R):
            uf = [t.from_numpy(a) for a in prep.request(inputs, i, un)]
            cand = [t.from_numpy(np.ascontiguousarray(inputs["seq_len"][i]))] + [
                t.from_numpy(np.ascontiguousarray(inputs[k][i])) for k in PLAIN_NAMES if k.startswith("cand_")]

            def call(uf=uf, cand=cand):
                xu, h = mu.forward(uf)
                return mc.forward([xu, h] + cand)[0].numpy()
            calls.append(call)
        return calls


class PytorchPeer:
    def __init__(self):
        import torch
        self.torch = torch
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        self.cache = {}

    def modules(self, ckpt, int8):
        key = (ckpt, int8)
        if key not in self.cache:
            import flatmodel
            from dtrn_ref.checkpoint import load_checkpoint
            model, _ = load_checkpoint(ckpt)
            mods = (flatmodel.Plain(model).eval(), flatmodel.UserStage(model).eval(),
                    flatmodel.CandidateStage(model).eval())
            if int8:
                from torch.ao.quantization import quantize_dynamic
                mods = tuple(quantize_dynamic(m, {self.torch.nn.Linear}, dtype=self.torch.qint8) for m in mods)
            self.cache[key] = mods
        return self.cache[key]

    def build(self, variant, n, inputs):
        t = self.torch
        plain, user, cand = self.modules(_files(variant, n)["checkpoint"], "int8" in variant["precision"])
        R = prep.num_requests(inputs)
        calls = []
        for i in range(R):
            a = [t.from_numpy(x) for x in prep.request(inputs, i, PLAIN_NAMES)]
            if variant["export"] == "plain":
                def call(a=a):
                    with t.inference_mode():
                        return plain(*a).numpy()
            else:
                d = dict(zip(PLAIN_NAMES, a))
                ua = [d[k] for k in PLAIN_NAMES if not k.startswith("cand_")]
                ca = [d["seq_len"]] + [d[k] for k in PLAIN_NAMES if k.startswith("cand_")]

                def call(ua=ua, ca=ca):
                    with t.inference_mode():
                        xu, h = user(*ua)
                        return cand(xu, h, *ca).numpy()
            calls.append(call)
        return calls


PEERS = {"onnxruntime": OrtPeer, "openvino": OpenvinoPeer, "litert": LitertPeer, "executorch": ExecutorchPeer,
         "pytorch": PytorchPeer}


def time_calls(calls, warmup, runs):
    for i in range(warmup):
        calls[i % len(calls)]()
    wall, cpu = [], []
    pc, pt = time.perf_counter, time.process_time
    for i in range(runs):
        f = calls[i % len(calls)]
        c0 = pt()
        t0 = pc()
        f()
        t1 = pc()
        c1 = pt()
        wall.append((t1 - t0) * 1e3)
        cpu.append((c1 - c0) * 1e3)
    return wall, cpu


def main(argv=None):
    global PLAIN_NAMES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("peer", choices=sorted(PEERS))
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--variants", default="", help="comma-separated subset (default: all exported)")
    a = ap.parse_args(argv)
    with open(a.manifest) as fh:
        man = json.load(fh)
    inputs = prep.load_inputs(a.inputs)
    PLAIN_NAMES = [str(x) for x in inputs["__names__"]] if "__names__" in inputs else [
        k for k in ("req_sparse", "req_dense", "seq", "seq_len", "cand_sparse", "cand_dense") if k in inputs]
    inputs.pop("__names__", None)
    golden = np.load(a.golden)
    out = sys.stdout
    sys.stdout = sys.stderr  # runtimes' chatter must not corrupt the protocol
    only = {x for x in a.variants.split(",") if x}
    ready, calls = {}, {}
    try:
        peer = PEERS[a.peer]()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        peer, err = None, f"{type(e).__name__}: {e}"
    for v in man["variants"]:
        if only and v["name"] not in only:
            continue
        st = {"ok": False, "error": v.get("error")}
        if not st["error"] and peer is None:
            st["error"] = f"runtime import failed: {err}"
        if not st["error"] and _files(v, a.n) is None:
            st["error"] = f"not exported for N={a.n}"
        if not st["error"]:
            try:
                cs = peer.build(v, a.n, inputs)
                probs = np.stack([np.asarray(c(), np.float64).reshape(golden.shape[1:]) for c in cs])
                st.update(prep.accuracy(probs, golden), ok=True)
                calls[v["name"]] = cs
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                st["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]
        ready[v["name"]] = st
    extra = {}
    if isinstance(peer, ExecutorchPeer):
        extra["xnnpack_threads"] = peer.threads
    print(json.dumps({"ready": ready, "versions": versions(a.peer), **extra}), file=out, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        wall, cpu = time_calls(calls[cmd["run"]], int(cmd["warmup"]), int(cmd["runs"]))
        print(json.dumps({"wall_ms": wall, "cpu_ms": cpu}), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
