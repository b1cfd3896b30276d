"""Export one trained DTRN checkpoint to a peer runtime, in every variant that peer offers.

usage: PYTHONPATH=reference:bench/peers PEER_PYTHON bench/peers/export.py PEER --checkpoint CKPT
           --calib CALIB.npz --out DIR [--ns 10,50,100,300,1000] [--only VARIANT,...]
Runs in the peer's own virtual environment (bench/peers/setup.sh). Writes DIR/manifest.json:
    {"peer": ..., "versions": {...}, "variants": [{"name", "export": plain|split, "precision",
      "files": {"<N>" or "*": {"plain": path} or {"user": path, "cand": path}}, "error": str|null,
      "export_s": seconds}]}
A variant whose export fails is kept in the manifest with its error (the report says why it did not run).

Every variant is the same model (flatmodel.Plain, or UserStage + CandidateStage) traced from the checkpoint.
int8 variants are calibrated on CALIB.npz (held-out requests, not the timed ones).
"""
import argparse
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import flatmodel  # noqa: E402
import prep  # noqa: E402
from versions import versions  # noqa: E402

CALIB_REQUESTS = 32   # calibration requests per graph (each with CALIB_N candidates)
CALIB_N = 100


# ---- shared helpers ---------------------------------------------------------------------------------

class Graphs:
    """The checkpoint's model as the three traceable modules, plus example and calibration inputs."""

    def __init__(self, checkpoint, calib_path):
        from dtrn_ref.checkpoint import load_checkpoint
        model, cfg = load_checkpoint(checkpoint)
        self.cfg = cfg
        self.model = model
        self.plain = flatmodel.Plain(model).eval()
        self.user = flatmodel.UserStage(model).eval()
        self.cand = flatmodel.CandidateStage(model).eval()
        self.names = flatmodel.input_names(cfg)
        self.user_names = flatmodel.user_input_names(cfg)
        self.cand_names = flatmodel.cand_input_names(cfg)
        calib = prep.load_inputs(calib_path)
        self.calib = prep.with_candidates(calib, CALIB_N)
        self.n_calib = min(CALIB_REQUESTS, prep.num_requests(self.calib))

    def plain_args(self, i=0, n=None, inputs=None):
        src = inputs if inputs is not None else self.calib
        if n is not None:
            src = prep.with_candidates(src, n)
        return [torch.from_numpy(a) for a in prep.request(src, i, self.names)]

    def user_args(self, i=0):
        return [torch.from_numpy(a) for a in prep.request(self.calib, i, self.user_names)]

    @torch.no_grad()
    def cand_args(self, i=0, n=None):
        src = self.calib if n is None else prep.with_candidates(self.calib, n)
        d = dict(zip(self.names, [torch.from_numpy(a) for a in prep.request(src, i, self.names)]))
        xu, h = self.user(*[d[k] for k in self.user_names])
        d.update(xu=xu, h=h)
        return [d[k] for k in self.cand_names]

    def calib_sets(self, graph, n=None):
        """Calibration inputs of one graph ("plain", "user", "cand") as lists of torch tensors."""
        f = {"plain": lambda i: self.plain_args(i, n), "user": self.user_args,
             "cand": lambda i: self.cand_args(i, n)}[graph]
        return [f(i) for i in range(self.n_calib)]

    def module(self, graph):
        return {"plain": self.plain, "user": self.user, "cand": self.cand}[graph]

    def graph_names(self, graph):
        return {"plain": self.names, "user": self.user_names, "cand": self.cand_names}[graph]


def graphs_of(export):
    return ("plain",) if export == "plain" else ("user", "cand")


def _n_axis(graph, name):
    """Which axis of an input is the candidate count N (None: not N-dependent)."""
    if graph == "user":
        return None
    return 0 if name.startswith("cand_") else None


# ---- ONNX (ONNX Runtime and OpenVINO start from it) -------------------------------------------------

def export_onnx(g, graph, path):
    """torch.onnx (dynamo exporter) with N dynamic; one self-contained file."""
    mod = g.module(graph)
    names = g.graph_names(graph)
    args = tuple(g.plain_args() if graph == "plain" else g.user_args() if graph == "user" else g.cand_args())
    dyn = None
    if graph != "user":
        N = torch.export.Dim("N", min=2, max=4096)
        dyn = (tuple({0: N} if _n_axis(graph, n) == 0 else None for n in names),)  # forward(*args)
    out_names = ["probs"] if graph != "user" else ["xu", "h"]
    prog = torch.onnx.export(mod, args, dynamo=True, input_names=names, output_names=out_names,
                             dynamic_shapes=dyn, optimize=True, external_data=False)
    prog.save(path, external_data=False)
    return path


def onnx_feeds(g, graph, n=None):
    return [{k: v.numpy() for k, v in zip(g.graph_names(graph), args)} for args in g.calib_sets(graph, n)]


def gemm_to_matmul(src, dst):
    """Rewrite every Gemm (transA=0, alpha=beta=1, constant B) as MatMul + Add, so that ORT's dynamic quantizer,
    which quantizes MatMul but leaves Gemm in float, sees every dense layer."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(src)
    gr = m.graph
    inits = {i.name: i for i in gr.initializer}
    new_nodes, n_rewritten = [], 0
    for node in gr.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type == "Gemm" and node.input[1] in inits and attrs.get("transA", 0) == 0
                and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0):
            w = numpy_helper.to_array(inits[node.input[1]])
            if attrs.get("transB", 0):
                w = w.T
            wname = node.input[1] + "_kn"
            gr.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), wname))
            out = node.output[0]
            if len(node.input) > 2 and node.input[2]:
                mm_out = out + "_mm"
                new_nodes.append(helper.make_node("MatMul", [node.input[0], wname], [mm_out], name=node.name + "_mm"))
                new_nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [out], name=node.name + "_add"))
            else:
                new_nodes.append(helper.make_node("MatMul", [node.input[0], wname], [out], name=node.name + "_mm"))
            n_rewritten += 1
        else:
            new_nodes.append(node)
    del gr.node[:]
    gr.node.extend(new_nodes)
    # drop initializers nobody uses any more
    used = {i for nd in gr.node for i in nd.input}
    keep = [i for i in gr.initializer if i.name in used]
    del gr.initializer[:]
    gr.initializer.extend(keep)
    onnx.save(m, dst)
    return n_rewritten


def weight_matmuls(path):
    """Names of the MatMul/Gemm nodes whose second input is a constant (the dense layers), and the others."""
    import onnx
    m = onnx.load(path)
    consts = {i.name for i in m.graph.initializer}
    consts |= {o for nd in m.graph.node if nd.op_type == "Constant" for o in nd.output}
    dense, act = [], []
    for nd in m.graph.node:
        if nd.op_type in ("MatMul", "Gemm"):
            (dense if nd.input[1] in consts else act).append(nd.name)
    return dense, act


class _Reader:
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        pass


def ort_variants(g, out, ns, only):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    specs = [("f32-plain", "plain", "f32"), ("f32-split", "split", "f32"),
             ("int8-static-plain", "plain", "int8 static QDQ per-channel"),
             ("int8-static-split", "split", "int8 static QDQ per-channel"),
             ("int8-dynamic-plain", "plain", "int8 dynamic"), ("int8-dynamic-split", "split", "int8 dynamic")]
    f32 = {}

    def base(graph):
        if graph not in f32:
            f32[graph] = export_onnx(g, graph, os.path.join(out, f"{graph}.onnx"))
        return f32[graph]

    def build(name, export, prec):
        files = {}
        for graph in graphs_of(export):
            src = base(graph)
            if prec == "f32":
                files[graph] = src
                continue
            dst = os.path.join(out, f"{graph}-{name.rsplit('-', 1)[0]}.onnx")
            if prec.startswith("int8 static"):
                pre = os.path.join(out, f"{graph}-pre.onnx")
                quant_pre_process(src, pre, skip_symbolic_shape=True)
                dense, act = weight_matmuls(pre)
                # dense layers int8; attention's activation x activation products and softmax stay f32
                quantize_static(pre, dst, _Reader(onnx_feeds(g, graph)), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=act,
                                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
            else:
                mm = os.path.join(out, f"{graph}-matmul.onnx")
                gemm_to_matmul(src, mm)
                dense, act = weight_matmuls(mm)
                quantize_dynamic(mm, dst, weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"], nodes_to_exclude=act)
            files[graph] = dst
        return {"*": files}

    return run_specs(specs, build, only)


# ---- OpenVINO ---------------------------------------------------------------------------------------

def ov_activation_matmuls(m):
    """Friendly names of the MatMuls of an OpenVINO model none of whose inputs is a (converted) constant."""
    def const(n):
        while n.get_type_name() in ("Convert", "Reshape", "Transpose", "Unsqueeze") and n.get_input_size() > 0:
            n = n.input_value(0).get_node()
        return n.get_type_name() == "Constant"
    return [op.get_friendly_name() for op in m.get_ops() if op.get_type_name() == "MatMul"
            and not any(const(op.input_value(i).get_node()) for i in range(2))]


def openvino_variants(g, out, ns, only):
    import nncf
    import openvino as ov
    specs = [("f32-plain", "plain", "f32"), ("f32-split", "split", "f32"),
             ("int8-plain", "plain", "int8 NNCF PTQ (dense layers)"), ("int8-split", "split", "int8 NNCF PTQ (dense layers)")]
    cache = {}

    def base(graph):
        if graph not in cache:
            onnx_path = export_onnx(g, graph, os.path.join(out, f"{graph}.onnx"))
            cache[graph] = ov.convert_model(onnx_path)
        return cache[graph]

    def build(name, export, prec):
        files = {}
        for graph in graphs_of(export):
            m = base(graph)
            if prec != "f32":
                feeds = onnx_feeds(g, graph)
                # The attention's activation x activation MatMuls and the softmaxes stay f32 (as in every other
                # peer's int8): quantizing them, or model_type=TRANSFORMER, gave mean |dp| of 0.01-0.17 on
                # trained small in development, against 0.001 this way.
                m = nncf.quantize(m, nncf.Dataset(feeds), subset_size=len(feeds),
                                  ignored_scope=nncf.IgnoredScope(names=ov_activation_matmuls(m), types=["Softmax"],
                                                                  validate=False))
            dst = os.path.join(out, f"{graph}-{'f32' if prec == 'f32' else 'int8'}.xml")
            ov.save_model(m, dst, compress_to_fp16=False)
            files[graph] = dst
        return {"*": files}

    return run_specs(specs, build, only)


# ---- LiteRT (litert-torch converts, ai-edge-quantizer quantizes the flatbuffer) ---------------------

def litert_variants(g, out, ns, only):
    """Static shapes, one file per N: litert-torch 0.10's dynamic-shape conversion fails on this model (a JAX
    TracerBoolConversionError in its lowering). int8 goes through ai-edge-quantizer on the float .tflite (the PT2E
    route of litert-torch quantizes the embedding tables with a non-zero zero point, which the TFLite
    EMBEDDING_LOOKUP kernel rejects at prepare)."""
    import litert_torch
    specs = [("f32-plain", "plain", "f32"), ("f32-split", "split", "f32"),
             ("int8-dynamic-plain", "plain", "int8 dynamic (ai-edge-quantizer dynamic_wi8_afp32)"),
             ("int8-dynamic-split", "split", "int8 dynamic (ai-edge-quantizer dynamic_wi8_afp32)"),
             ("int8-static-plain", "plain", "int8 static FC per-channel (ai-edge-quantizer)"),
             ("int8-static-split", "split", "int8 static FC per-channel (ai-edge-quantizer)")]

    def f32_file(graph, n):
        dst = os.path.join(out, f"{graph}-f32.tflite" if graph == "user" else f"{graph}-f32-N{n}.tflite")
        if not os.path.exists(dst):
            mod = g.module(graph)
            args = tuple(g.plain_args(0, n) if graph == "plain" else g.user_args() if graph == "user"
                         else g.cand_args(0, n))
            litert_torch.convert(mod, args).export(dst)
        return dst

    def calib_data(path, graph, n):
        from ai_edge_litert.interpreter import Interpreter
        sig = Interpreter(model_path=path).get_signature_runner()
        det = sig.get_input_details()
        keys = sorted(det, key=lambda k: int(k.rsplit("_", 1)[-1]))
        return {"serving_default": [{k: a.numpy().astype(det[k]["dtype"]) for k, a in zip(keys, args)}
                                    for args in g.calib_sets(graph, n)]}

    def quantize(src, dst, prec, graph, n):
        if os.path.exists(dst):
            return dst
        from ai_edge_quantizer import quantizer, recipe, recipe_manager
        if "dynamic" in prec:
            qt = quantizer.Quantizer(src, recipe.dynamic_wi8_afp32())
            qt.quantize().export_model(dst)
        else:
            rm = recipe_manager.RecipeManager()
            rm.add_static_config(regex=".*", operation_name=recipe.TFLOperationName.FULLY_CONNECTED,
                                 activation_num_bits=8, weight_num_bits=8,
                                 algorithm_key=recipe.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
            qt = quantizer.Quantizer(src, rm.get_quantization_recipe())
            cal = qt.calibrate(calib_data(src, graph, n), num_threads=1)
            qt.quantize(cal).export_model(dst)
        return dst

    def build(name, export, prec):
        files = {}
        tag = name.rsplit("-", 1)[0]
        for n in ns:
            fs = {}
            for graph in graphs_of(export):
                src = f32_file(graph, n)
                if prec == "f32":
                    fs[graph] = src
                else:
                    fs[graph] = quantize(src, src.replace("-f32", "-" + tag), prec, graph,
                                         None if graph == "user" else n)
            files[str(n)] = fs
        return files

    return run_specs(specs, build, only)


# ---- ExecuTorch (XNNPACK) ---------------------------------------------------------------------------

ET_MAX_N = 1024


def executorch_variants(g, out, ns, only):
    """One .pte per variant with N dynamic (upper bound ET_MAX_N; XNNPACK supports bounded dynamic shapes):
    a static-shape .pte per N measured about 10% faster at N = 50 on small in development, but costs a
    PT2E calibration and lowering per N (minutes each for int8)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    specs = [("f32-plain", "plain", "f32"), ("f32-split", "split", "f32"),
             ("int8-static-plain", "plain", "int8 static per-channel (PT2E, XNNPACKQuantizer)"),
             ("int8-static-split", "split", "int8 static per-channel (PT2E, XNNPACKQuantizer)"),
             ("int8-dynamic-plain", "plain", "int8 dynamic per-channel (PT2E, XNNPACKQuantizer)"),
             ("int8-dynamic-split", "split", "int8 dynamic per-channel (PT2E, XNNPACKQuantizer)")]

    def lower(graph, prec, dst):
        if os.path.exists(dst):
            return dst
        mod = g.module(graph)
        names = g.graph_names(graph)
        args = tuple(g.plain_args() if graph == "plain" else g.user_args() if graph == "user" else g.cand_args())
        dyn = None
        if graph != "user":
            N = torch.export.Dim("N", min=2, max=ET_MAX_N)
            dyn = (tuple({0: N} if _n_axis(graph, n) == 0 else None for n in names),)
        if prec != "f32":
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer, get_symmetric_quantization_config)
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
            dynamic = "dynamic" in prec
            q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
            pm = torch.export.export(mod, args, dynamic_shapes=dyn).module()
            pm = prepare_pt2e(pm, q)
            with torch.no_grad():
                for a in g.calib_sets(graph):
                    pm(*a)
            mod = convert_pt2e(pm)
            dyn = dyn[0] if dyn else None  # the converted GraphModule takes the inputs flat, not as *args
        ep = torch.export.export(mod, args, dynamic_shapes=dyn)
        prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
        with open(dst, "wb") as fh:
            fh.write(prog.buffer)
        return dst

    def build(name, export, prec):
        tag = name.rsplit("-", 1)[0]
        return {"*": {graph: lower(graph, prec, os.path.join(out, f"{graph}-{tag}.pte")) for graph in graphs_of(export)}}

    return run_specs(specs, build, only)


# ---- PyTorch eager (nothing to export: the worker builds the modules from the checkpoint) -----------

def pytorch_variants(g, out, ns, only):
    specs = [("f32-plain", "plain", "f32"), ("f32-split", "split", "f32"),
             ("int8-dynamic-plain", "plain", "int8 dynamic (quantize_dynamic)"),
             ("int8-dynamic-split", "split", "int8 dynamic (quantize_dynamic)")]
    return run_specs(specs, lambda name, export, prec: {"*": {"checkpoint": g.checkpoint}}, only)


def run_specs(specs, build, only):
    variants = []
    for name, export, prec in specs:
        if only and name not in only:
            continue
        t0 = time.time()
        v = {"name": name, "export": export, "precision": prec, "files": {}, "error": None}
        try:
            v["files"] = build(name, export, prec)
        except Exception as e:  # noqa: BLE001 -- a failed export is reported, not fatal
            traceback.print_exc()
            v["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]
        v["export_s"] = round(time.time() - t0, 1)
        print(f"export: {name}: {'ok' if not v['error'] else 'FAILED: ' + v['error']} ({v['export_s']} s)",
              file=sys.stderr, flush=True)
        variants.append(v)
    return variants


EXPORTERS = {"onnxruntime": ort_variants, "openvino": openvino_variants, "litert": litert_variants,
             "executorch": executorch_variants, "pytorch": pytorch_variants}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("peer", choices=sorted(EXPORTERS))
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--calib", required=True, help="prepared calibration inputs (prep.py npz)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--ns", default="10,50,100,300,1000", help="candidate counts (static-shape exports)")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(a.out, exist_ok=True)
    g = Graphs(a.checkpoint, a.calib)
    g.checkpoint = os.path.abspath(a.checkpoint)
    ns = [int(x) for x in a.ns.split(",") if x]
    only = {x for x in a.only.split(",") if x}
    man_path = os.path.join(a.out, "manifest.json")
    old = {}
    if only and os.path.exists(man_path):  # partial re-export: keep the other variants
        with open(man_path) as fh:
            old = {v["name"]: v for v in json.load(fh)["variants"]}
    variants = EXPORTERS[a.peer](g, a.out, ns, only)
    old.update({v["name"]: v for v in variants})
    man = {"peer": a.peer, "checkpoint": os.path.abspath(a.checkpoint), "ns": ns,
           "versions": versions(a.peer), "variants": list(old.values())}
    with open(man_path + ".tmp", "w") as fh:
        json.dump(man, fh, indent=1)
    os.replace(man_path + ".tmp", man_path)
    bad = [v["name"] for v in variants if v["error"]]
    print(f"export: {a.peer}: {len(variants) - len(bad)} of {len(variants)} variants exported"
          + (f"; failed: {', '.join(bad)}" if bad else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
