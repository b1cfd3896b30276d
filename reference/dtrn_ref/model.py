"""DTRN in PyTorch, exactly as shared/spec/dtrn-model.md; parameter names are docs/checkpoint-format.md's.

Shapes: R requests, M candidates, K tasks, B behaviour types, L positions, d width, F fields,
n = F + B. The transformer runs once per request per (task, behaviour) (never per candidate);
the first block's attention, independent of the task in post-LN, runs once per behaviour.
"""
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

from .config import fields as cfg_fields
from .config import gate_experts, item_table, n_ln, num_experts, num_fields, seq_field_defs, tables, tower_input_width

# Training-only variants of DTRN for ablations (python3 -m dtrn_ref compare); none of them exports.
VARIANTS = ("no-hyper", "no-trm")

LN_EPS = 1e-5


class MHA(nn.Module):
    """Multi-head self-attention with torch.nn.MultiheadAttention's parameter layout."""

    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x, valid):
        """x [S, L, d]; valid bool [S, L] with at least one True per row (never an all-masked softmax)."""
        S, L, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = Fn.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(S, L, h, dh).transpose(1, 2) for t in (q, k, v))   # [S, h, L, dh]
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)               # [S, h, L, L]
        s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
        o = torch.matmul(self.drop(torch.softmax(s, dim=-1)), v)               # [S, h, L, dh]
        return self.out_proj(o.transpose(1, 2).reshape(S, L, d))


class Block(nn.Module):
    """Post-LN encoder block's weights; its LayerNorms are conditional, so TIM applies them."""

    def __init__(self, d, heads, d_ff, dropout):
        super().__init__()
        self.attn = MHA(d, heads, dropout)
        self.ffn1 = nn.Linear(d, d_ff)
        self.ffn2 = nn.Linear(d_ff, d)
        self.drop = nn.Dropout(dropout)

    def ffn(self, x):
        return self.drop(self.ffn2(self.drop(torch.relu(self.ffn1(x)))))


class Hyper(nn.Module):
    """Hypernetwork: (task k, behaviour b) -> (gamma, beta) of every conditional LayerNorm."""

    def __init__(self, K, B, d_h, h_h, nln, d):
        super().__init__()
        self.task_emb = nn.Parameter(torch.randn(K, d_h))
        self.behavior_emb = nn.Parameter(torch.randn(B, d_h))
        self.fc1 = nn.Linear(2 * d_h, h_h)
        self.fc2 = nn.Linear(h_h, nln * 2 * d)
        nn.init.zeros_(self.fc2.weight)  # identity at initialisation: gamma = 1, beta = 0
        nn.init.zeros_(self.fc2.bias)
        self.nln, self.d = nln, d

    def forward(self):
        """-> [K, B, n_ln, 2, d]: [..., 0, :] = gamma = 1 + dgamma, [..., 1, :] = beta."""
        K, B = self.task_emb.shape[0], self.behavior_emb.shape[0]
        tb = torch.cat([self.task_emb[:, None, :].expand(K, B, -1), self.behavior_emb[None, :, :].expand(K, B, -1)], -1)
        h = self.fc2(torch.relu(self.fc1(tb))).reshape(K, B, self.nln, 2, self.d)
        return torch.stack([1.0 + h[..., 0, :], h[..., 1, :]], dim=-2)


class SharedLN(nn.Module):
    """Ablation 'no-hyper': one (gamma, beta) per LayerNorm, shared by every (task, behaviour)."""

    def __init__(self, nln, d):
        super().__init__()
        self.gb = nn.Parameter(torch.stack([torch.ones(nln, d), torch.zeros(nln, d)], dim=1))

    def forward(self):
        return self.gb[None, None]  # [1, 1, n_ln, 2, d]: broadcasts over tasks and behaviours


class TIM(nn.Module):
    def __init__(self, cfg, shared_ln=False):
        super().__init__()
        d, K, B = cfg["d"], len(cfg["tasks"]), len(cfg["behaviors"])
        self.d, self.L = d, cfg["L"]
        self.pos = nn.Parameter(torch.randn(cfg["L"], d) * 0.02)
        self.hyper = SharedLN(n_ln(cfg), d) if shared_ln else Hyper(K, B, cfg["hyper_dim"], cfg["hyper_hidden"],
                                                                     n_ln(cfg), d)
        self.blocks = nn.ModuleList(Block(d, cfg["heads"], cfg["d_ff"], cfg["dropout"]) for _ in range(cfg["blocks"]))
        self.target = cfg["pooling"] == "target"
        if self.target:
            self.query = nn.Linear(d, d)

    def encode(self, x, seq_len):
        """x [R, B, L, d] (item embedding + position), seq_len [R, B] -> H' [K, R, B, L, d].

        Padded positions hold finite values that no valid position ever reads.
        """
        R, B, L, d = x.shape
        cln = self.hyper()                                                     # [K, B, n_ln, 2, d]
        K = cln.shape[0]
        valid = torch.arange(L, device=x.device)[None, None, :] < seq_len[:, :, None]   # [R, B, L]
        # An empty sequence attends over its (unused) padding instead of an all-masked softmax.
        attend = valid | (seq_len == 0)[:, :, None]

        def ln(t, i):  # t [K, R, B, L, d]; conditional LayerNorm number i
            g = cln[:, None, :, None, i, 0, :]
            b = cln[:, None, :, None, i, 1, :]
            return g * Fn.layer_norm(t, (d,), eps=LN_EPS) + b

        h = None
        for i, blk in enumerate(self.blocks):
            if i == 0:  # post-LN: the first attention does not depend on the task, run it once per (r, b)
                a = blk.attn(x.reshape(R * B, L, d), attend.reshape(R * B, L)).reshape(1, R, B, L, d)
                h = ln(x[None] + blk.drop(a), 0)
            else:
                a = blk.attn(h.reshape(K * R * B, L, d), attend[None].expand(K, R, B, L).reshape(K * R * B, L))
                h = ln(h + blk.drop(a.reshape(K, R, B, L, d)), 2 * i)
            h = ln(h + blk.ffn(h), 2 * i + 1)
        return h, valid

    def pool(self, h, valid, seq_len, q, cand_req):
        """H' [K, R, B, L, d] -> interest u [M, K, B, d]; q [M, d] (target pooling) or None."""
        K, R, B, L, d = h.shape
        empty = (seq_len == 0)                                                # [R, B]
        if not self.target:
            s = torch.where(valid[None, ..., None], h, torch.zeros((), dtype=h.dtype, device=h.device)).sum(-2)
            u = s / seq_len.clamp(min=1)[None, :, :, None].to(h.dtype)        # empty: 0 / 1 = 0
            return u[:, cand_req].permute(1, 0, 2, 3)
        # Target attention per request: pad its candidates' queries to [R, Nmax, d] and use batched
        # products, so H' is never copied per candidate.
        M = q.shape[0]
        counts = torch.bincount(cand_req, minlength=R)
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(M, device=q.device) - starts[cand_req]
        nmax = int(counts.max())
        qp = q.new_zeros(R, nmax, d)
        qp[cand_req, pos] = q
        s = torch.matmul(qp[None, :, None], h.transpose(-1, -2)) / math.sqrt(d)   # [K, R, B, Nmax, L]
        attend = (valid | empty[:, :, None])[None, :, :, None, :]
        alpha = torch.softmax(s.masked_fill(~attend, float("-inf")), dim=-1)
        u = torch.matmul(alpha, h)                                             # [K, R, B, Nmax, d]
        u = torch.where(empty[None, :, :, None, None], torch.zeros((), dtype=u.dtype, device=u.device), u)
        return u.permute(1, 3, 0, 2, 4)[cand_req, pos]                         # [M, K, B, d]


class TRM(nn.Module):
    """Task k's SENet-like re-weighting of the n field embeddings."""

    def __init__(self, n, t):
        super().__init__()
        self.fc1 = nn.Linear(n, t)
        self.fc2 = nn.Linear(t, n)
        # At initialisation z is close to 0 (LayerNorm outputs average to 0 at beta = 0, embeddings are
        # small), so fc1's output is about its bias: PyTorch's random bias left every hidden unit dead
        # (relu 0, no gradient ever) with probability 2^-t per task. A zero bias keeps them alive.
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.weight)  # neutral at initialisation: a = 1
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        """x [M, n, d] -> r [M, n*d]."""
        a = 2.0 * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(-1)))))
        return (a[..., None] * x).reshape(x.shape[0], -1)


def _mlp(widths):
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))


class DTRN(nn.Module):
    def __init__(self, cfg, variant=None):
        super().__init__()
        if variant is not None and variant not in VARIANTS:
            raise ValueError(f"unknown DTRN variant '{variant}' (choose from {list(VARIANTS)})")
        self.cfg, self.variant = cfg, variant
        d, K = cfg["d"], len(cfg["tasks"])
        n = num_fields(cfg)
        self.emb = nn.ModuleDict({t: nn.Embedding(v["vocab"], d) for t, v in tables(cfg).items()})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.dense = nn.ModuleDict({f["name"]: nn.Linear(f["width"], d) for f in cfg_fields(cfg, kind="dense")})
        self.tim = TIM(cfg, shared_ln=variant == "no-hyper")
        self.trm = None if variant == "no-trm" else nn.ModuleList(TRM(n, cfg["trm_hidden"]) for _ in range(K))
        self.K = K
        ex = cfg["experts"]
        if cfg["mtl"] != "towers":
            self.experts = nn.ModuleList(_mlp([n * d] + ex["hidden"]) for _ in range(num_experts(cfg)))
            self.gates = nn.ModuleList(nn.Linear(n * d, len(gate_experts(cfg, k))) for k in range(K))
        self.towers = nn.ModuleList(_mlp([tower_input_width(cfg)] + cfg["towers"] + [1]) for _ in range(K))
        self.item_table = item_table(cfg)
        self.seq_fields = [(f["name"], f["table"]) for f in seq_field_defs(cfg)]

    # -- stages, public so tests can look inside -------------------------------------------------
    def field_embeddings(self, batch):
        """Every field's d-vector per candidate, config order: [M, F, d]."""
        dt = self.tim.pos.dtype
        out = []
        for f in self.cfg["fields"]:
            n, per_req = f["name"], f["group"] != "item"
            if f["kind"] == "sparse":
                rows = batch.req_sparse[n] if per_req else batch.cand_sparse[n]
                v = self.emb[f["table"]](rows)
            else:
                v = self.dense[n]((batch.req_dense[n] if per_req else batch.cand_dense[n]).to(dt))
            out.append(v[batch.cand_req] if per_req else v)  # user/context: computed once per request
        return torch.stack(out, dim=1)

    def interests(self, batch):
        """Interest vectors u [M, K, B, d]."""
        L = self.tim.L
        seq_len = batch.seq_len
        # Position j of a left-aligned sequence of length len has age len-1-j (padding: clamped, unused).
        age = (seq_len[:, :, None] - 1 - torch.arange(L, device=seq_len.device)).clamp(min=0)
        x = event_embeddings(self, batch) + self.tim.pos[age]
        h, valid = self.tim.encode(x, seq_len)
        q = self.tim.query(candidate_embeddings(self, batch)) if self.tim.target else None
        u = self.tim.pool(h, valid, seq_len, q, batch.cand_req)
        return u.expand(u.shape[0], self.K, u.shape[2], u.shape[3])  # 'no-hyper': one interest for all tasks

    def bottom(self, batch):
        """Per task k, r_k [M, n*d]."""
        xf = self.field_embeddings(batch)
        u = self.interests(batch)
        if self.trm is None:  # ablation 'no-trm': a = 1
            return [torch.cat([xf, u[:, k]], dim=1).reshape(xf.shape[0], -1) for k in range(self.K)]
        return [trm(torch.cat([xf, u[:, k]], dim=1)) for k, trm in enumerate(self.trm)]

    def head(self, rs):
        """Per-task bottoms -> logits [M, K]."""
        logits = []
        for k, r in enumerate(rs):
            if self.cfg["mtl"] == "towers":
                o = r
            else:
                idx = gate_experts(self.cfg, k)
                g = torch.softmax(self.gates[k](r), dim=-1)                    # [M, E_k]
                outs = torch.stack([_run(self.experts[e], r, relu_last=True) for e in idx], dim=1)
                o = (g[..., None] * outs).sum(1)
            logits.append(_run(self.towers[k], o, relu_last=False)[:, 0])
        return torch.stack(logits, dim=1)

    def forward(self, batch):
        return self.head(self.bottom(batch))


def event_embeddings(model, batch):
    """Every behaviour event's E_item[id] + sum over seq_fields of E_f[id_f]: [R, B, L, d]."""
    x = model.emb[model.item_table](batch.seq)
    for name, table in model.seq_fields:
        x = x + model.emb[table](batch.seq_side[name])
    return x


def candidate_embeddings(model, batch):
    """e(candidate) = e_item_id + sum over seq_fields of e_f (where sequence events live): [M, d]."""
    e = model.emb[model.item_table](batch.cand_sparse["item_id"])
    for name, table in model.seq_fields:
        e = e + model.emb[table](batch.cand_sparse[name])
    return e


def _run(layers, x, relu_last):
    for j, lin in enumerate(layers):
        x = lin(x)
        if relu_last or j + 1 < len(layers):
            x = torch.relu(x)
    return x


@torch.no_grad()
def fold_hypernetwork(model, dtype=None):
    """(gamma, beta) per (task, behaviour, LayerNorm): [K, B, n_ln, 2, d], what the converter stores.
    `dtype` (e.g. torch.float64) evaluates in that precision without touching the model."""
    hyper = model.tim.hyper
    if dtype is not None and dtype != hyper.fc1.weight.dtype:
        hyper = copy.deepcopy(hyper).to(dtype)
    return hyper().detach().clone()


@torch.no_grad()
def randomize_for_tests(model, seed=0):
    """Give every parameter non-trivial values (hypernetwork fc2, TRM fc2, positions included) so that
    parity tests exercise all the math, while keeping activations in a range where probabilities are
    not saturated. Deterministic in `seed`, independent of the model's dtype and device."""
    g = torch.Generator().manual_seed(seed)

    def uni(shape, a):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * a

    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        if name.startswith("emb.") or name == "tim.pos":
            v = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5
        elif name.startswith("tim.hyper.") and name.endswith("_emb"):
            v = torch.randn(shape, generator=g, dtype=torch.float64)
        elif name == "tim.hyper.fc2.weight":
            v = uni(shape, 0.3 * math.sqrt(3.0 / shape[1]))  # dgamma, beta of a few tenths
        elif name.endswith("bias"):
            v = torch.randn(shape, generator=g, dtype=torch.float64) * (0.3 if name.startswith("trm.") else 0.1)
        else:  # [out, in] weights, He scale (variance 2/in): activations keep their scale through relus
            v = uni(shape, math.sqrt(6.0 / shape[-1]))
        p.copy_(v.to(p.dtype))
    return model
