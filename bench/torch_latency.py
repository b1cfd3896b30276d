"""PyTorch peer timing: the reference model (float32, eval, no_grad) scoring one request at a time.

usage: PYTHONPATH=reference python3 bench/torch_latency.py --checkpoint CKPT --requests R.jsonl [--runs N] [--threads T]
Times model(collate([request])) per request (request parsing done beforehand, as dtrn-bench does),
and prints avg/p50/p90/p99 in ms, the same statistics dtrn-bench prints.
"""
import argparse
import statistics
import sys
import time

import torch

from dtrn_ref.checkpoint import load_checkpoint
from dtrn_ref.requests_io import collate, read_requests


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--requests", required=True)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, cfg = load_checkpoint(a.checkpoint)
    model = model.float().eval()
    reqs = read_requests(a.requests, cfg)
    batches = [collate([r], cfg) for r in reqs]
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.runs):
            b = batches[i % len(batches)]
            t0 = time.perf_counter()
            model(b)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= a.warmup:
                times.append(dt)
    times.sort()
    def q(f):
        return times[min(len(times) - 1, int(f * len(times)))]

    print(f"pytorch {torch.__version__}, {a.threads} thread(s), {len(times)} runs of {cfg.get('name', '?')}: "
          f"avg {statistics.fmean(times):.4f}  p50 {q(0.5):.4f}  p90 {q(0.9):.4f}  p99 {q(0.99):.4f}  min {times[0]:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
