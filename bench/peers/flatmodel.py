"""The DTRN reference model (dtrn_ref.model.DTRN) rewritten for one request with flat tensor inputs, so that
torch.export / ONNX / LiteRT / ExecuTorch can trace it. Same parameters, same arithmetic (float32).

One request = one user with N candidates. Inputs (numpy/torch, prepared beforehand from parsed requests):
    req_sparse  int64 [Fs_u]     table rows of the user and context sparse fields (config order)
    req_dense   f32   [Wd_u]     the user and context dense fields, concatenated (config order)   (if any)
    seq         int64 [B, L]     item-table rows of each behaviour sequence, oldest first, padded with 0
    seq_len     int64 [B]        valid length of each sequence (0 = empty)
    cand_sparse int64 [N, Fs_i]  table rows of the item sparse fields (item_id first)
    cand_dense  f32   [N, Wd_i]  the item dense fields, concatenated                                (if any)
Output: probs f32 [N, K].

`Plain` is the whole request as one graph. The split is `UserStage` (once per request: the user/context field
embeddings and the conditional transformer's H') and `CandidateStage` (batched over the N candidates: target
attention, TRM, experts, gates, towers).

Differences from the reference, all exact: the hypernetwork is folded into constants (as the converter does),
the per-request padding of the reference's batched target attention is gone (one request), and an empty
sequence's interest is zeroed by a multiply with 0/1 instead of torch.where.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

from dtrn_ref.config import gate_experts
from dtrn_ref.model import LN_EPS, fold_hypernetwork

INPUT_ORDER = ("req_sparse", "req_dense", "seq", "seq_len", "cand_sparse", "cand_dense")


def check_supported(cfg):
    if cfg.get("seq_fields"):
        raise NotImplementedError("bench/peers: configs with seq_fields are not supported")
    if cfg["pooling"] != "target":
        raise NotImplementedError("bench/peers: only target pooling is supported")


def input_names(cfg):
    """The inputs this config's plain graph takes, in order (dense inputs only where the config has them)."""
    names = ["req_sparse"]
    if any(f["kind"] == "dense" and f["group"] != "item" for f in cfg["fields"]):
        names.append("req_dense")
    names += ["seq", "seq_len", "cand_sparse"]
    if any(f["kind"] == "dense" and f["group"] == "item" for f in cfg["fields"]):
        names.append("cand_dense")
    return names


class _Common(nn.Module):
    """Holds references to the reference model's modules (no copies) plus the folded (gamma, beta)."""

    def __init__(self, model):
        super().__init__()
        cfg = model.cfg
        check_supported(cfg)
        self.cfg = cfg
        self.d, self.L = cfg["d"], cfg["L"]
        self.K, self.B = len(cfg["tasks"]), len(cfg["behaviors"])
        self.heads = cfg["heads"]
        self.emb = model.emb
        self.dense = model.dense
        self.pos = model.tim.pos
        self.blocks = model.tim.blocks
        self.query = model.tim.query
        self.trm = model.trm
        self.towers = model.towers
        self.mtl = cfg["mtl"]
        if self.mtl != "towers":
            self.experts = model.experts
            self.gates = model.gates
        self.register_buffer("cln", fold_hypernetwork(model).to(torch.float32).contiguous())  # [K, B, n_ln, 2, d]
        self.item_table = model.item_table
        # layout of the flat inputs
        self.fields = []  # (name, group, kind, table, index into its flat input, width)
        ru = iu = du = di = 0
        for f in cfg["fields"]:
            per_req = f["group"] != "item"
            if f["kind"] == "sparse":
                idx = ru if per_req else iu
                self.fields.append((f["name"], per_req, "sparse", f["table"], idx, 1))
                if per_req:
                    ru += 1
                else:
                    iu += 1
            else:
                idx = du if per_req else di
                self.fields.append((f["name"], per_req, "dense", None, idx, f["width"]))
                if per_req:
                    du += f["width"]
                else:
                    di += f["width"]
        self.gate_idx = [gate_experts(cfg, k) for k in range(self.K)]

    # ---- user stage pieces ------------------------------------------------------------------------
    def user_fields(self, req_sparse, req_dense):
        """-> [F_u, d]: the user and context fields' d-vectors, config order."""
        out = []
        for name, per_req, kind, table, idx, w in self.fields:
            if not per_req:
                continue
            if kind == "sparse":
                out.append(self.emb[table](req_sparse[idx:idx + 1])[0])
            else:
                out.append(self.dense[name](req_dense[None, idx:idx + w])[0])  # 2-D: quantizers want it
        return torch.stack(out, dim=0)

    def _mha(self, blk, x, attend):
        """x [S, L, d], attend bool [S, L] -> [S, L, d] (torch.nn.MultiheadAttention's math)."""
        S, L, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = Fn.linear(x, blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(S, L, h, dh).transpose(1, 2) for t in (q, k, v))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
        s = s.masked_fill(~attend[:, None, None, :], float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), v)
        return blk.attn.out_proj(o.transpose(1, 2).reshape(S, L, d))

    def _ln(self, t, i):
        """Conditional LayerNorm i on t [K or 1, B, L, d] -> [K, B, L, d]."""
        g = self.cln[:, :, None, i, 0, :]
        b = self.cln[:, :, None, i, 1, :]
        return g * Fn.layer_norm(t, (self.d,), eps=LN_EPS) + b

    def attend_mask(self, seq_len):
        valid = torch.arange(self.L, device=seq_len.device)[None, :] < seq_len[:, None]   # [B, L]
        return valid | (seq_len == 0)[:, None]

    def encode(self, seq, seq_len):
        """-> H' [K, B, L, d]."""
        L, d, K, B = self.L, self.d, self.K, self.B
        age = (seq_len[:, None] - 1 - torch.arange(L, device=seq.device)[None, :]).clamp(min=0)   # [B, L]
        x = self.emb[self.item_table](seq) + self.pos[age]                                          # [B, L, d]
        attend = self.attend_mask(seq_len)
        h = None
        for i, blk in enumerate(self.blocks):
            if i == 0:
                a = self._mha(blk, x, attend)
                h = self._ln((x + a)[None], 0)
            else:
                a = self._mha(blk, h.reshape(K * B, L, d), attend[None].expand(K, B, L).reshape(K * B, L))
                h = self._ln(h + a.reshape(K, B, L, d), 2 * i)
            h = self._ln(h + blk.ffn(h), 2 * i + 1)
        return h

    # ---- candidate stage ----------------------------------------------------------------------------
    def candidates(self, xu, h, seq_len, cand_sparse, cand_dense):
        """xu [F_u, d], H' [K, B, L, d], seq_len [B], item inputs -> probs [N, K]."""
        N = cand_sparse.shape[0]
        d, K = self.d, self.K
        cols, ju = [], 0
        for name, per_req, kind, table, idx, w in self.fields:
            if per_req:
                cols.append(xu[ju][None, :].expand(N, d))
                ju += 1
            elif kind == "sparse":
                cols.append(self.emb[table](cand_sparse[:, idx]))
            else:
                cols.append(self.dense[name](cand_dense[:, idx:idx + w]))
        xf = torch.stack(cols, dim=1)                                                  # [N, F, d]
        q = self.query(self.emb[self.item_table](cand_sparse[:, 0]))                   # [N, d]
        s = torch.matmul(q[None, None], h.transpose(-1, -2)) / math.sqrt(d)           # [K, B, N, L]
        attend = self.attend_mask(seq_len)                                             # [B, L]
        alpha = torch.softmax(s.masked_fill(~attend[None, :, None, :], float("-inf")), dim=-1)
        u = torch.matmul(alpha, h)                                                     # [K, B, N, d]
        u = u * (seq_len > 0).to(u.dtype)[None, :, None, None]
        logits = []
        for k in range(K):
            x = torch.cat([xf, u[k].transpose(0, 1)], dim=1)                          # [N, n, d]
            trm = self.trm[k]
            a = 2.0 * torch.sigmoid(trm.fc2(torch.relu(trm.fc1(x.mean(-1)))))
            r = (a[..., None] * x).reshape(N, -1)
            if self.mtl == "towers":
                o = r
            else:
                g = torch.softmax(self.gates[k](r), dim=-1)
                outs = torch.stack([_mlp(self.experts[e], r, True) for e in self.gate_idx[k]], dim=1)
                o = (g[..., None] * outs).sum(1)
            logits.append(_mlp(self.towers[k], o, False))                            # [N, 1]
        return torch.sigmoid(torch.cat(logits, dim=1))


def _mlp(layers, x, relu_last):
    for j, lin in enumerate(layers):
        x = lin(x)
        if relu_last or j + 1 < len(layers):
            x = torch.relu(x)
    return x


def _unpack(names, args):
    d = dict(zip(names, args))
    return (d["req_sparse"], d.get("req_dense"), d["seq"], d["seq_len"], d["cand_sparse"], d.get("cand_dense"))


class Plain(nn.Module):
    """The whole request as one graph: inputs in input_names(cfg) order -> probs [N, K]."""

    def __init__(self, model):
        super().__init__()
        self.m = _Common(model)
        self.names = input_names(model.cfg)

    def forward(self, *args):
        req_sparse, req_dense, seq, seq_len, cand_sparse, cand_dense = _unpack(self.names, args)
        xu = self.m.user_fields(req_sparse, req_dense)
        h = self.m.encode(seq, seq_len)
        return self.m.candidates(xu, h, seq_len, cand_sparse, cand_dense)


def user_input_names(cfg):
    return [n for n in input_names(cfg) if not n.startswith("cand_")]


def cand_input_names(cfg):
    return ["xu", "h", "seq_len"] + [n for n in input_names(cfg) if n.startswith("cand_")]


class UserStage(nn.Module):
    """Once per request: (req_sparse[, req_dense], seq, seq_len) -> (xu [F_u, d], H' [K, B, L, d])."""

    def __init__(self, model):
        super().__init__()
        self.m = _Common(model)
        self.names = user_input_names(model.cfg)

    def forward(self, *args):
        d = dict(zip(self.names, args))
        return self.m.user_fields(d["req_sparse"], d.get("req_dense")), self.m.encode(d["seq"], d["seq_len"])


class CandidateStage(nn.Module):
    """Batched over the N candidates: (xu, H', seq_len, cand_sparse[, cand_dense]) -> probs [N, K]."""

    def __init__(self, model):
        super().__init__()
        self.m = _Common(model)
        self.names = cand_input_names(model.cfg)

    def forward(self, *args):
        d = dict(zip(self.names, args))
        return self.m.candidates(d["xu"], d["h"], d["seq_len"], d["cand_sparse"], d.get("cand_dense"))
