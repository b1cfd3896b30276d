"""Versions of what a peer imports, as one JSON line: `python versions.py PEER` (exit 1 if an import fails)."""
import importlib
import json
import platform
import sys

MODULES = {
    "pytorch": ["torch"],
    "onnxruntime": ["onnxruntime", "onnx", "onnxscript", "torch"],
    "openvino": ["openvino", "nncf", "onnx", "torch"],
    "litert": ["ai_edge_litert", "litert_torch", "ai_edge_quantizer", "torchao", "torch"],
    "executorch": ["executorch", "torchao", "torch"],
    "plot": ["matplotlib"],
}


def versions(peer):
    out = {"python": platform.python_version()}
    for m in MODULES[peer]:
        try:
            mod = importlib.import_module(m)
        except Exception as e:  # noqa: BLE001 -- report any import failure
            out[m] = f"IMPORT FAILED: {type(e).__name__}: {e}"
            continue
        v = getattr(mod, "__version__", None)
        if v is None:
            try:
                from importlib.metadata import version
                v = version(m.replace("_", "-"))
            except Exception:  # noqa: BLE001
                v = "?"
        out[m] = str(v)
    return out


if __name__ == "__main__":
    v = versions(sys.argv[1])
    print(json.dumps({sys.argv[1]: v}))
    sys.exit(1 if any(str(x).startswith("IMPORT FAILED") for x in v.values()) else 0)
