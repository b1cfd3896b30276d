"""Multi-task baselines without DTRN's bottom: shared-bottom, MMoE and PLE.

They read the same Batch as DTRN and see the same inputs: every field embedding (same tables,
same dense projections) plus one masked mean of the item embeddings per behaviour sequence (no
TIM, no TRM). The concatenation x [M, (F + B) * d] has DTRN's r_k width, and the sizes come from
the config's `experts` and `towers`, so the trainer compares bottoms, not capacity:
- shared-bottom: one MLP (experts.hidden) shared by all tasks, a tower per task;
- mmoe: experts.shared + K * experts.per_task shared experts, a softmax gate per task;
- ple: one CGC level, max(per_task, 1) experts per task and max(shared, 1) shared ones.
"""
import torch
import torch.nn as nn

from .config import fields as cfg_fields, item_table, num_fields, tables

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
    def __init__(self, cfg, kind):
        super().__init__()
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline '{kind}' (choose from {list(BASELINES)})")
        self.cfg, self.kind = cfg, kind
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
        L = batch.seq.shape[-1]
        valid = (torch.arange(L, device=batch.seq.device) < batch.seq_len[..., None]).unsqueeze(-1)  # [R, B, L, 1]
        e = self.emb[self.item_table](batch.seq) * valid
        pooled = e.sum(2) / batch.seq_len.clamp(min=1)[..., None]  # empty sequence -> 0
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
