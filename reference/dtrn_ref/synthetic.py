"""Synthetic labelled requests with planted multi-task structure (numpy, deterministic by seed).

The planted world (fixed by `world_seed`, so requests drawn with different seeds share it):
- items: a style vector s_i (clustered by category), quality q_i, price p_i (dearer when better)
  and "bait" b_i (flashy, anti-correlated with quality);
- users: a click taste a_u and a deep (cart/purchase) taste c_u only partly aligned with a_u, each
  a set of INTERESTS vectors (multi-modal interests: affinity <a_u, s_i> below is the log-mean-exp
  over them, so the interest that matches an item dominates), and a price sensitivity ps_u.
Every (user, item) pair has an engagement depth E on a funnel [0, 1] (0 = click, 1 = purchase):
    P(E >= 0) = sigmoid(c0 + <a_u, s_i> + BAIT * b_i + hour effect)          -- click
    P(E >= t) = P(E >= 0) * exp(-t * lam),  lam = softplus(l0 - deep_ui)      -- deeper steps
    deep_ui   = <c_u, s_i> + QUALITY * q_i - ps_u * p_i
so clicks favour flashy low-quality items while purchases favour quality at a good price: the
tasks partly conflict (a shared bottom suffers negative transfer). One uniform draw per candidate
decides every label (y_t = [U < P(E >= t)]), so labels are nested like a real funnel
(purchase => cart => click) and deep tasks are much rarer than clicks.

Tasks and behaviour types map to depths by position: the first is depth 0 (click), the last
depth 1 (the deepest, purchase), the others evenly in between. A behaviour sequence of depth t
is a weighted draw without replacement, weights P(E >= t), so each behaviour type carries its
own task's signal. Candidates are a few items drawn from the user's preferences (likely
positives) plus uniformly sampled items. Field values come from the latent world by group and
kind, so any valid config works.
"""
import numpy as np

from . import config as C

D = 4                # latent style dimensions
INTERESTS = 3        # a user's click (and deep) taste is a mix of this many interests
BAIT, QUALITY = 0.8, 1.0
TASTE = 2.0          # spread of user-item affinity: how personal the labels are
CLICK_BIAS, DEEP_BIAS = -3.5, 3.5
HASH_MULT = 2654435761  # spreads indices over int64 for hashed tables (ids need not be small)


def _depths(n):
    return np.zeros(1) if n == 1 else np.arange(n) / (n - 1)


def _quantize(x, levels):
    """Values -> bucket ids in [0, levels) by quantiles (equal-sized buckets)."""
    edges = np.quantile(x, np.linspace(0, 1, levels + 1)[1:-1])
    return np.searchsorted(edges, x).astype(np.int64)


def _ids(idx, vocab, hashed):
    """Row index in the world -> the int64 id a request carries for a table."""
    idx = np.asarray(idx, dtype=np.int64)
    return idx * HASH_MULT + 17 if hashed else idx % vocab


class World:
    """The latent users and items; sizes are capped so un-hashed ids stay inside their tables."""

    def __init__(self, cfg, seed=0, n_items=1000, n_users=3000):
        rng = np.random.default_rng([seed, 0x5EED])
        item = C.fields(cfg, "item")[0]
        self.item_vocab, self.item_hashed = item["vocab"], item["hashed"]
        self.n_items = n_items if item["hashed"] else min(n_items, item["vocab"])
        n_cat = max(2, min(40, self.n_items // 20))
        centres = rng.normal(size=(n_cat, D))
        self.cat = rng.integers(n_cat, size=self.n_items)
        self.style = centres[self.cat] + 0.6 * rng.normal(size=(self.n_items, D))
        self.quality = rng.normal(size=self.n_items)
        self.price = 0.6 * self.quality + 0.8 * rng.normal(size=self.n_items)
        self.bait = -0.7 * self.quality + 0.7 * rng.normal(size=self.n_items)
        self.n_users = n_users
        sa = TASTE / np.sqrt(D * 1.36)  # <a, s> has std TASTE (s has variance 1 + 0.36)
        shape = (n_users, INTERESTS, D)
        self.click_taste = sa * rng.normal(size=shape)
        rho = 0.3  # deep taste only partly follows click taste
        self.deep_taste = rho * self.click_taste + np.sqrt(1 - rho**2) * sa * rng.normal(size=shape)
        self.price_sens = rng.normal(0.8, 0.6, size=n_users)
        self.hour_phase = rng.uniform(0, 2 * np.pi)
        # Observable features are noisy views of the latents (fixed per world).
        self.user_latent = np.concatenate(
            [self.click_taste.mean(1) / sa, self.deep_taste.mean(1) / sa, self.price_sens[:, None]], axis=1)
        self.item_latent = np.concatenate(
            [self.price[:, None], self.quality[:, None] + 0.5 * rng.normal(size=(self.n_items, 1)),
             self.bait[:, None] + 0.5 * rng.normal(size=(self.n_items, 1)), self.style], axis=1)
        self._feature_rng = np.random.default_rng([seed, 0xFEA7])
        self._proj = {}

    def item_ids(self):
        """The id every world item carries in requests (index = world item index)."""
        return _ids(np.arange(self.n_items), self.item_vocab, self.item_hashed)

    def projection(self, key, n_in, n_out, identity_first=0):
        """A fixed random projection per (field, group); the first columns may be the latents."""
        if key not in self._proj:
            p = self._feature_rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)
            k = min(identity_first, n_in, n_out)
            p[:, :k] = np.eye(n_in, k)
            self._proj[key] = p
        return self._proj[key]

    def funnel(self, users, hours, items=None):
        """(log P(E >= 0), lam) for users [R] x items [R, M] (all items when None), each [R, M];
        log P(E >= t) = first - t * second."""
        if items is None:  # float32: this is the generator's hot spot
            s, q, p, b = (x.astype(np.float32) for x in (self.style, self.quality, self.price, self.bait))
            a, c = self.click_taste[users].astype(np.float32), self.deep_taste[users].astype(np.float32)
            click, deep = _soft_max(a @ s.T), _soft_max(c @ s.T)
            hours = hours.astype(np.float32)
        else:
            s, q, p, b = self.style[items], self.quality[items], self.price[items], self.bait[items]
            click = _soft_max(np.einsum("rjd,rmd->rjm", self.click_taste[users], s))
            deep = _soft_max(np.einsum("rjd,rmd->rjm", self.deep_taste[users], s))
        click += BAIT * b + CLICK_BIAS + 0.4 * np.sin(2 * np.pi * hours / 24 + self.hour_phase)[:, None].astype(click.dtype)
        deep += QUALITY * q - self.price_sens[users][:, None].astype(deep.dtype) * p
        return _log_sigmoid(click), -_log_sigmoid(deep - DEEP_BIAS)  # softplus(x) = -log_sigmoid(-x)


def _soft_max(x):
    """[R, INTERESTS, M] affinities -> [R, M]: log-mean-exp over a user's interests (the best one dominates)."""
    m = x.max(1)
    return m + np.log(np.exp(x - m[:, None]).mean(1))


def _log_sigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _weighted_draw(rng, logw, k):
    """k indices per row without replacement, weights exp(logw) (Gumbel top-k), in draw order."""
    keys = logw - np.log(-np.log(rng.random(size=logw.shape, dtype=np.float32) + np.float32(1e-30)))
    k = min(k, logw.shape[1])
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def _fill(world, cfg, group, rows, latent, rng, extra=None):
    """Per-row values of every field of a group: sparse -> int64 ids, dense -> float vectors."""
    out = {}
    for f in C.fields(cfg, group):
        name = f["name"]
        if f["kind"] == "dense":
            proj = world.projection((group, name), latent.shape[1], f["width"], identity_first=3)
            out[name] = latent[rows] @ proj + 0.3 * rng.normal(size=(len(rows), f["width"]))
            continue
        vocab, hashed = f["vocab"], f["hashed"]
        if extra is not None and name in extra:
            idx = extra[name]
        else:
            proj = world.projection((group, name), latent.shape[1], 1)
            idx = _quantize((latent @ proj)[:, 0], min(vocab, 16))[rows]
        out[name] = _ids(idx, vocab, hashed)
    return out


def generate(cfg, n_requests, seed, n_candidates=20, world_seed=0):
    """`n_requests` labelled request dicts (docs/request-format.md) for `cfg` (path, text or dict)."""
    cfg = C.load_config(cfg)
    world = World(cfg, world_seed)
    rng = np.random.default_rng([seed, 0xDA7A])
    K, L = len(cfg["tasks"]), cfg["L"]
    R, N = int(n_requests), int(n_candidates)
    if N < 1:
        raise ValueError("n_candidates must be at least 1")
    users = rng.integers(world.n_users, size=R)
    hours = rng.integers(24, size=R)
    task_t, beh_t = _depths(K), _depths(len(cfg["behaviors"]))
    n_pos = min(N, max(1, N // 5))

    seqs = {b: [] for b in cfg["behaviors"]}
    cands = np.empty((R, N), dtype=np.int64)
    chunk = max(1, 2_000_000 // world.n_items)
    for lo in range(0, R, chunk):
        u, h = users[lo:lo + chunk], hours[lo:lo + chunk]
        r = len(u)
        log_click, lam = world.funnel(u, h)
        for b, t in zip(cfg["behaviors"], beh_t):
            # deeper behaviours are rarer: at most L (click) down to 0.3 L (purchase) events
            n_max = max(1, int(round(L * (1 - 0.7 * t))))
            lengths = rng.integers(0, n_max + 1, size=r)
            drawn = _weighted_draw(rng, log_click - np.float32(t) * lam, n_max)
            # a weighted sample of each length, in random time order
            seqs[b].extend(rng.permutation(drawn[i, :lengths[i]]) for i in range(r))
        # likely positives: half from the click taste, half from the deepest taste
        n_click = (n_pos + 1) // 2
        pos = np.concatenate([_weighted_draw(rng, log_click, n_click),
                              _weighted_draw(rng, log_click - lam, n_pos - n_click)], axis=1)
        rand = rng.integers(world.n_items, size=(r, N - n_pos))
        both = np.concatenate([pos, rand], axis=1)
        cands[lo:lo + r] = np.take_along_axis(both, rng.permuted(np.tile(np.arange(N), (r, 1)), axis=1), axis=1)

    # one uniform per candidate decides all tasks: labels are nested along the funnel
    log_click, lam = world.funnel(users, hours, cands)
    logp = log_click[..., None] - lam[..., None] * task_t  # [R, N, K]
    labels = (np.log(rng.uniform(size=(R, N, 1))) < logp).astype(np.int64)

    user_vals = _fill(world, cfg, "user", users, world.user_latent, rng, {"user_id": users})
    ctx_latent = np.stack([np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24),
                           rng.normal(size=R)], axis=1)
    ctx_vals = _fill(world, cfg, "context", np.arange(R), ctx_latent, rng,
                     {f["name"]: hours for f in C.fields(cfg, "context") if "hour" in f["name"]})
    flat = cands.reshape(-1)
    item_vals = _fill(world, cfg, "item", flat, world.item_latent, rng,
                      {"item_id": flat, "category": world.cat[flat]})
    item_vals = {k: v.reshape((R, N) + v.shape[1:]) for k, v in item_vals.items()}
    item_ids = world.item_ids()

    out = []
    for i in range(R):
        out.append({
            "id": f"syn{seed}-{i}",
            "user": {k: _py(v[i]) for k, v in user_vals.items()},
            "context": {k: _py(v[i]) for k, v in ctx_vals.items()},
            "behaviors": {b: item_ids[seqs[b][i]].tolist() for b in cfg["behaviors"]},
            "candidates": [{k: _py(v[i, j]) for k, v in item_vals.items()} for j in range(N)],
            "labels": labels[i].tolist(),
        })
    return out


def _py(v):
    """numpy scalar/vector -> JSON-ready int or list of floats."""
    return v.tolist() if isinstance(v, np.ndarray) else int(v)


def oracle_log_probs(cfg, requests, world_seed=0):
    """The world's true log P(label = 1) per candidate and task, [total candidates, K]: the ceiling
    any model can reach on generated requests. Needs the config's user_id and hour fields, and a
    user_id that is hashed or whose table holds every user (else the user cannot be recovered)."""
    cfg = C.load_config(cfg)
    world = World(cfg, world_seed)
    user_f = {f["name"]: f for f in C.fields(cfg, "user")}.get("user_id")
    if user_f is None or not (user_f["hashed"] or user_f["vocab"] >= world.n_users):
        raise ValueError("oracle_log_probs: the config's user_id field cannot identify the world's users")
    if "hour" not in {f["name"] for f in C.fields(cfg, "context")}:
        raise ValueError("oracle_log_probs: the config has no context field 'hour'")
    index = {int(v): i for i, v in enumerate(world.item_ids())}
    uid = np.array([r["user"]["user_id"] for r in requests], dtype=np.int64)
    users = (uid - 17) // HASH_MULT if user_f["hashed"] else uid
    out = []
    for r, u in zip(requests, users):
        items = np.array([[index[c["item_id"]] for c in r["candidates"]]])
        log_click, lam = world.funnel(np.array([u]), np.array([r["context"]["hour"]]), items)
        out.append(log_click[0][:, None] - lam[0][:, None] * _depths(len(cfg["tasks"]))[None, :])
    return np.concatenate(out)
