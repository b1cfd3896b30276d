"""Multi-task baselines without DTRN's bottom: shared-bottom, MMoE and PLE.

They read the same Batch as DTRN and see the same inputs: every field embedding (same tables,
same dense projections) plus one pooled vector per behaviour sequence (no TIM, no TRM): the masked
mean of the events' embeddings (E_item + the seq_fields' embeddings, as DTRN's events), or with
`target_attention` DTRN's target attention applied to the events themselves (event embedding plus
learned position; q = W_q e(candidate) + c_q; softmax(q . x_j / sqrt(d)) over valid positions),
DIN-style, so the table can tell the attention from the rest of DTRN. The concatenation
x [M, (F + B) * d] has DTRN's r_k width, and the sizes come from
the config's `experts` and `towers`, so the trainer compares bottoms, not capacity:
- shared-bottom: one MLP (experts.hidden) shared by all tasks, a tower per task;
- mmoe: experts.shared + K * experts.per_task shared experts, a softmax gate per task;
- ple: one CGC level, max(per_task, 1) experts per task and max(shared, 1) shared ones;
- single-task: K independent shared-bottom models of one task each (own tables, own MLP, own
  tower; task k's loss reaches only model k), the classic reference for negative transfer.
"""
import math

import torch
import torch.nn as nn

from .config import fields as cfg_fields
from .config import item_table, num_fields, seq_field_defs, tables

BASELINES = ("shared-bottom", "mmoe", "ple")


class MLP(nn.Module):
    """Linear layers with relu after each hidden layer (and after the last if relu_last)."""

    def __init__(self, widths, relu_last):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.relu_last = relu_last

    def forward(self, x):
        for j, lin in enumerate(self.layers):
            x = lin(x)
            if self.relu_last or j + 1 < len(self.layers):
                x = torch.relu(x)
        return x


class Baseline(nn.Module):
    def __init__(self, cfg, kind, target_attention=False):
        super().__init__()
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline '{kind}' (choose from {list(BASELINES)})")
        self.cfg, self.kind = cfg, kind
        d = cfg["d"]
        self.seq_fields = [(f["name"], f["table"]) for f in seq_field_defs(cfg)]
        self.target_attention = target_attention
        if target_attention:
            self.pos = nn.Parameter(torch.randn(cfg["L"], d) * 0.02)
            self.query = nn.Linear(d, d)
        d, K = cfg["d"], len(cfg["tasks"])
        self.emb = nn.ModuleDict({t: nn.Embedding(v["vocab"], d) for t, v in tables(cfg).items()})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.dense = nn.ModuleDict({f["name"]: nn.Linear(f["width"], d) for f in cfg_fields(cfg, kind="dense")})
        self.item_table = item_table(cfg)
        width = num_fields(cfg) * d
        hidden = cfg["experts"]["hidden"] or [max(cfg["towers"] or [d])]  # 'towers' configs have no experts
        ex = cfg["experts"]
        if kind == "shared-bottom":
            self.experts = nn.ModuleList([MLP([width] + hidden, relu_last=True)])
            self.gate_sets = None
        else:
            if kind == "mmoe":
                n_exp = max(1, ex["shared"] + K * ex["per_task"])
                self.gate_sets = [list(range(n_exp))] * K
            else:
                e_t, e_s = max(1, ex["per_task"]), max(1, ex["shared"])
                n_exp = K * e_t + e_s
                self.gate_sets = [[k * e_t + t for t in range(e_t)] + [K * e_t + s for s in range(e_s)]
                                  for k in range(K)]
            self.experts = nn.ModuleList(MLP([width] + hidden, relu_last=True) for _ in range(n_exp))
            self.gates = nn.ModuleList(nn.Linear(width, len(s)) for s in self.gate_sets)
        self.towers = nn.ModuleList(MLP([hidden[-1]] + cfg["towers"] + [1], relu_last=False) for _ in range(K))

    def inputs(self, batch):
        """x [M, (F + B) * d]: field embeddings in config order, then mean-pooled sequences."""
        out = []
        for f in self.cfg["fields"]:
            n, per_req = f["name"], f["group"] != "item"
            if f["kind"] == "sparse":
                v = self.emb[f["table"]](batch.req_sparse[n] if per_req else batch.cand_sparse[n])
            else:
                v = self.dense[n](batch.req_dense[n] if per_req else batch.cand_dense[n])
            out.append(v[batch.cand_req] if per_req else v)
        from .model import candidate_embeddings, event_embeddings
        L = batch.seq.shape[-1]
        seq_len = batch.seq_len
        valid = torch.arange(L, device=batch.seq.device) < seq_len[..., None]  # [R, B, L]
        x = event_embeddings(self, batch)
        if self.target_attention:
            age = (seq_len[:, :, None] - 1 - torch.arange(L, device=seq_len.device)).clamp(min=0)
            x = x + self.pos[age]
            q = self.query(candidate_embeddings(self, batch))                       # [M, d]
            s = (x[batch.cand_req] * q[:, None, None, :]).sum(-1) / math.sqrt(x.shape[-1])   # [M, B, L]
            ok = valid[batch.cand_req]
            empty = ~ok.any(-1, keepdim=True)
            alpha = torch.softmax(s.masked_fill(~(ok | empty), float("-inf")), dim=-1)
            u = (alpha[..., None] * x[batch.cand_req]).sum(2)                       # [M, B, d]
            u = torch.where(empty, torch.zeros((), dtype=u.dtype, device=u.device), u)
            out.extend(u.unbind(1))
        else:
            e = x * valid[..., None]
            pooled = e.sum(2) / seq_len.clamp(min=1)[..., None]  # empty sequence -> 0
            out.extend(pooled[batch.cand_req].unbind(1))
        return torch.cat(out, dim=1)

    def forward(self, batch):
        """-> logits [M, K]."""
        x = self.inputs(batch)
        if self.gate_sets is None:
            h = self.experts[0](x)
            return torch.cat([t(h) for t in self.towers], dim=1)
        outs = torch.stack([e(x) for e in self.experts], dim=1)  # [M, E, h]
        logits = []
        for k, tower in enumerate(self.towers):
            g = torch.softmax(self.gates[k](x), dim=-1)
            o = (g[..., None] * outs[:, self.gate_sets[k]]).sum(1)
            logits.append(tower(o))
        return torch.cat(logits, dim=1)


class SingleTask(nn.Module):
    """K independent one-task shared-bottom models; logits [M, K]. `task_modules[k]` is task k's model,
    so a trainer can early-stop (and pick the best epoch of) each task on its own."""

    def __init__(self, cfg, target_attention=False):
        super().__init__()
        self.cfg = cfg
        self.task_modules = nn.ModuleList(
            Baseline(dict(cfg, tasks=[t]), "shared-bottom", target_attention) for t in cfg["tasks"])

    def forward(self, batch):
        return torch.cat([m(batch) for m in self.task_modules], dim=1)
