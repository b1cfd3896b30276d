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


def generate_columns(cfg, n_requests, seed, n_candidates=20, world_seed=0):
    """`n_requests` labelled requests for `cfg` from the positive-transfer world, as raw-id Columns."""
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

    item_ids = world.item_ids()
    events = {b: (np.concatenate(seqs[b]) if R else np.zeros(0, np.int64)).astype(np.int64) for b in cfg["behaviors"]}
    side = {}
    for f in C.seq_field_defs(cfg):  # the events' own item fields, as the candidates carry them
        side[f["name"]] = {b: _sparse_item_ids(world, cfg, f, ev) for b, ev in events.items()}
    lens = np.array([[len(seqs[b][i]) for b in cfg["behaviors"]] for i in range(R)], dtype=np.int64).reshape(R, -1)
    return _assemble(cfg, [f"syn{seed}-{i}" for i in range(R)], user_vals, ctx_vals, lens,
                     {b: item_ids[ev] for b, ev in events.items()}, side, item_vals, labels)


def generate(cfg, n_requests, seed, n_candidates=20, world_seed=0):
    """`n_requests` labelled request dicts (docs/request-format.md) for `cfg` (path, text or dict), from
    the positive-transfer world above."""
    return list(generate_columns(cfg, n_requests, seed, n_candidates, world_seed).iter_dicts())


def _sparse_item_ids(world, cfg, f, idx):
    """Ids of item sparse field f for world items idx (what _fill gives a candidate)."""
    if f["name"] == "item_id":
        return _ids(idx, f["vocab"], f["hashed"])
    if f["name"] == "category":
        return _ids(world.cat[idx], f["vocab"], f["hashed"])
    proj = world.projection(("item", f["name"]), world.item_latent.shape[1], 1)
    q = _quantize((world.item_latent @ proj)[:, 0], min(f["vocab"], 16))
    return _ids(q[idx], f["vocab"], f["hashed"])


def _assemble(cfg, ids, user_vals, ctx_vals, lens, events, side, item_vals, labels):
    """Raw-id store.Columns from per-request arrays. lens [R, B]: events per (request, behaviour);
    events[b] / side[f][b]: that behaviour's event ids, requests in order; item_vals[f] [R, N, ...]."""
    from .store import Columns
    R, B = lens.shape[0], len(cfg["behaviors"])
    N = labels.shape[1]
    id_bytes, id_off = Columns.encode_ids(ids)
    req = {}
    for vals in (user_vals, ctx_vals):
        for k, v in vals.items():
            req["req." + k] = np.asarray(v, dtype=np.int64 if np.asarray(v).ndim == 1 else np.float64)
    seq_len = lens.reshape(-1).astype(np.int64)
    seq_off = np.zeros(R * B + 1, dtype=np.int64)
    np.cumsum(seq_len, out=seq_off[1:])

    def interleave(per_b):  # behaviour-major arrays -> request-major, behaviour-minor
        starts = {b: np.concatenate([[0], np.cumsum(lens[:, j])]) for j, b in enumerate(cfg["behaviors"])}
        out = np.empty(int(seq_off[-1]), dtype=np.int64)
        for j, b in enumerate(cfg["behaviors"]):
            dst = seq_off[np.arange(R) * B + j]
            cnt = lens[:, j]
            pos = np.repeat(dst - starts[b][:-1], cnt) + np.arange(int(cnt.sum()))
            out[pos] = per_b[b]
        return out

    seq = {"seq.item_id": interleave(events)}
    for n, per_b in side.items():
        seq["seq." + n] = interleave(per_b)
    cand_off = np.arange(R + 1, dtype=np.int64) * N
    cand = {}
    for k, v in item_vals.items():
        v = np.asarray(v)
        cand["cand." + k] = v.reshape((R * N,) + v.shape[2:]).astype(np.int64 if v.ndim == 2 else np.float64)
    return Columns(cfg, id_bytes, id_off, req, seq_off[:-1], seq_len, seq, cand_off, cand,
                   labels.reshape(R * N, -1).astype(np.int8), None, rows=False)


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


# ---- the negative-transfer world ------------------------------------------------------------------
#
# Fixed before any model was compared on it (docs/results-reference.md tells how it was checked).
# - Items: NT_D latent factors s_i, clustered by category (NT_CATS centres, within-category spread
#   NT_SPREAD), and a popularity pop_i. Nothing about s_i is handed to a model except the category
#   and what the sequences reveal: models must learn the item factors in their embeddings.
# - Users are new in every request and carry no raw user id (user_id is 0 in every request): a
#   user is known by their behaviour sequences alone, and every test user is unseen in training.
#   Each user has NT_MODES interests; interest m has a
#   "near" taste a_m and an orthogonal-ish taste b_m (independent normals). Task (or behaviour) of
#   depth t in [0, 1] (click 0, purchase 1, cart in between) has taste
#       tau_t,m = cos(phi_t) a_m + sin(phi_t) b_m,   phi_t = NT_CONFLICT * t,
#   so click and purchase tastes read the SAME item factors with correlation cos(0.75 pi) = -0.71:
#   what a user clicks, they tend not to buy, and vice versa. Popularity pulls the same way
#   (weight NT_POP * cos(phi_t): popular items get clicks, not purchases).
# - Labels: y_t ~ Bernoulli(sigmoid(bias_t + lme_m <tau_t,m, s_i> + NT_POP cos(phi_t) pop_i
#   [+ hour and activity effects on click])), drawn independently per task: purchase is not click
#   times a conversion rate, and a purchase need not follow a click.
# - Behaviour sequences: the events of behaviour type of depth t are drawn from THAT type's taste
#   (click events reveal the click taste, purchase events the purchase taste, cart events a taste in
#   between), so which (task, behaviour) pair is read matters. Interests drift: an event of age j
#   (0 = most recent) is drawn with taste cos(theta_j) tau_now + sin(theta_j) tau_old, theta_j =
#   (pi/2) min(1, j / NT_DRIFT_AGE), tau_old an earlier, independent taste: recent events say more
#   about the labels than old ones, so order and positions matter; the interest mode of each event
#   is drawn at random, and a candidate's label follows the mode closest to it, so attending to the
#   events that match the candidate (target attention) matters.
NT_ITEMS, NT_D, NT_CATS, NT_SPREAD, NT_MODES = 1000, 8, 40, 0.5, 2
NT_CONFLICT = 0.75 * np.pi
NT_TASTE = 2.0          # std of <tau, s>
NT_POP = 0.5
NT_EVENT_SHARP = 3.0    # how closely events follow the taste (category softmax temperature)
NT_DRIFT_AGE = 10       # events this old or older come from the earlier taste alone
NT_BIAS = (-1.5, -3.5)  # label bias for depth 0 and depth 1 (linear in between)


class NTWorld:
    """The negative-transfer world's items (users are drawn per request)."""

    def __init__(self, cfg, seed=0, n_items=NT_ITEMS):
        rng = np.random.default_rng([seed, 0x4E54])
        item = C.fields(cfg, "item")[0]
        self.item_vocab, self.item_hashed = item["vocab"], item["hashed"]
        self.n_items = n_items if item["hashed"] else min(n_items, item["vocab"])
        n_cat = min(NT_CATS, max(2, self.n_items // 20))
        self.centres = rng.normal(size=(n_cat, NT_D))
        # every category holds items; item index order is by category (so a category is a range)
        self.cat = np.sort(np.concatenate([np.arange(n_cat), rng.integers(n_cat, size=self.n_items - n_cat)]))
        self.cat_start = np.searchsorted(self.cat, np.arange(n_cat + 1))
        s = self.centres[self.cat] + NT_SPREAD * rng.normal(size=(self.n_items, NT_D))
        self.style = s / np.sqrt(1 + NT_SPREAD ** 2)          # unit variance per factor
        self.pop = rng.normal(size=self.n_items)
        self.hour_phase = rng.uniform(0, 2 * np.pi)
        self.item_latent = np.stack([self.pop, rng.normal(size=self.n_items)], axis=1)  # observable: popularity
        self._feature_rng = np.random.default_rng([seed, 0xFEA8])
        self._proj = {}

    projection = World.projection

    def item_ids(self):
        return _ids(np.arange(self.n_items), self.item_vocab, self.item_hashed)


def _nt_taste(a, b, t):
    phi = NT_CONFLICT * t
    return np.cos(phi) * a + np.sin(phi) * b


def _nt_events(world, rng, now, old, lengths, L):
    """Draw events for tastes now/old [r, M, D] and lengths [r] -> world item indices, oldest first, flat."""
    r = len(lengths)
    age = np.arange(L)[None, :].repeat(r, 0)                                  # [r, L] (age j)
    theta = (np.pi / 2) * np.minimum(1.0, age / NT_DRIFT_AGE)
    mode = rng.integers(NT_MODES, size=(r, L))
    pick = lambda t: np.take_along_axis(t, mode[..., None], axis=1)            # noqa: E731  [r, L, D]
    taste = np.cos(theta)[..., None] * pick(now) + np.sin(theta)[..., None] * pick(old)
    scale = NT_TASTE / np.sqrt(NT_D) * NT_EVENT_SHARP
    logits = scale * taste @ (world.centres / np.sqrt(1 + NT_SPREAD ** 2)).T   # [r, L, cats]
    g = logits - np.log(-np.log(rng.random(size=logits.shape) + 1e-300))
    cat = g.argmax(-1)
    lo, hi = world.cat_start[cat], world.cat_start[cat + 1]
    item = lo + (rng.random(size=cat.shape) * (hi - lo)).astype(np.int64)     # [r, L] by age
    keep = age < lengths[:, None]
    # oldest first: age lengths-1 .. 0
    rev = np.where(keep, lengths[:, None] - 1 - age, L)                         # position of each kept event
    out = np.full((r, L + 1), -1, dtype=np.int64)
    np.put_along_axis(out, rev, item, axis=1)
    out = out[:, :L]
    return out[out >= 0] if r else np.zeros(0, np.int64)


def generate_nt_columns(cfg, n_requests, seed, n_candidates=10, world_seed=0, with_oracle=False):
    """`n_requests` labelled requests from the negative-transfer world as raw-id Columns (and, with
    with_oracle, the world's true logits [M, K]: the ceiling any model can reach)."""
    cfg = C.load_config(cfg)
    world = NTWorld(cfg, world_seed)
    rng = np.random.default_rng([seed, 0x4E54DA7A])
    K, L, R, N = len(cfg["tasks"]), cfg["L"], int(n_requests), int(n_candidates)
    if N < 1:
        raise ValueError("n_candidates must be at least 1")
    task_t, beh_t = _depths(K), _depths(len(cfg["behaviors"]))
    bias = NT_BIAS[0] + (NT_BIAS[1] - NT_BIAS[0]) * task_t
    sa = NT_TASTE / np.sqrt(NT_D)
    n_taste = max(1, N // 5)  # candidates drawn from the tastes (likely positives), spread over the tasks
    events = {b: [] for b in cfg["behaviors"]}
    lens = np.zeros((R, len(cfg["behaviors"])), dtype=np.int64)
    cands = np.empty((R, N), dtype=np.int64)
    logits = np.empty((R, N, K))
    hours = rng.integers(24, size=R)
    act = rng.normal(size=R)
    chunk = 4096
    for lo in range(0, R, chunk):
        r = min(chunk, R - lo)
        a, b = sa * rng.normal(size=(2, r, NT_MODES, NT_D))
        a_old, b_old = sa * rng.normal(size=(2, r, NT_MODES, NT_D))
        for j, (bn, t) in enumerate(zip(cfg["behaviors"], beh_t)):
            n_max = max(1, int(round(L * (1 - 0.6 * t))))
            ln = rng.integers(0, n_max + 1, size=r)
            lens[lo:lo + r, j] = ln
            events[bn].append(_nt_events(world, rng, _nt_taste(a, b, t), _nt_taste(a_old, b_old, t), ln, L))
        # candidates: n_taste from the tasks' current tastes, the rest uniform
        tk = rng.integers(K, size=(r, n_taste))
        now = np.stack([_nt_taste(a, b, t) for t in task_t], axis=1)          # [r, K, M, D]
        taste = np.take_along_axis(now, tk[:, :, None, None], axis=1)          # [r, n_taste, M, D]
        flat_taste = taste.reshape(r * n_taste, NT_MODES, NT_D)
        liked = _nt_events(world, rng, flat_taste, flat_taste, np.ones(r * n_taste, np.int64), 1)
        both = np.concatenate([liked.reshape(r, n_taste), rng.integers(world.n_items, size=(r, N - n_taste))], 1)
        c = np.take_along_axis(both, rng.permuted(np.tile(np.arange(N), (r, 1)), axis=1), axis=1)
        cands[lo:lo + r] = c
        aff = np.einsum("rkmd,rnd->rnkm", now, world.style[c])                # [r, N, K, M]
        m = aff.max(-1)
        lme = m + np.log(np.exp(aff - m[..., None]).mean(-1))                 # [r, N, K]
        z = bias + lme + NT_POP * np.cos(NT_CONFLICT * task_t) * world.pop[c][..., None]
        z[..., 0] += 0.3 * np.sin(2 * np.pi * hours[lo:lo + r] / 24 + world.hour_phase)[:, None] \
            + 0.3 * act[lo:lo + r, None]
        logits[lo:lo + r] = z
    labels = (rng.random(size=logits.shape) < 1 / (1 + np.exp(-logits))).astype(np.int64)

    uids = np.zeros(R, dtype=np.int64)  # no raw user id: every request is a new user, known by its events
    user_latent = np.stack([act, rng.normal(size=R)], axis=1)
    user_vals = _fill(world, cfg, "user", np.arange(R), user_latent, rng, {"user_id": uids})
    ctx_latent = np.stack([np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24), rng.normal(size=R)], 1)
    ctx_vals = _fill(world, cfg, "context", np.arange(R), ctx_latent, rng,
                     {f["name"]: hours for f in C.fields(cfg, "context") if "hour" in f["name"]})
    flat = cands.reshape(-1)
    item_vals = _fill(world, cfg, "item", flat, world.item_latent, rng, {"item_id": flat, "category": world.cat[flat]})
    item_vals = {k: v.reshape((R, N) + v.shape[1:]) for k, v in item_vals.items()}
    ev = {bn: np.concatenate(v) if v else np.zeros(0, np.int64) for bn, v in events.items()}
    side = {f["name"]: {bn: _sparse_item_ids(world, cfg, f, e) for bn, e in ev.items()} for f in C.seq_field_defs(cfg)}
    item_ids = world.item_ids()
    cols = _assemble(cfg, [f"nt{seed}-{i}" for i in range(R)], user_vals, ctx_vals, lens,
                     {bn: item_ids[e] for bn, e in ev.items()}, side, item_vals, labels)
    return (cols, logits.reshape(R * N, K)) if with_oracle else cols


WORLDS = ("positive-transfer", "negative-transfer")


def make_columns(cfg, world, n_requests, seed, n_candidates=None):
    """Raw-id Columns from the named world."""
    if world == "negative-transfer":
        return generate_nt_columns(cfg, n_requests, seed, n_candidates or 10)
    if world == "positive-transfer":
        return generate_columns(cfg, n_requests, seed, n_candidates or 20)
    raise ValueError(f"unknown synthetic world '{world}' (choose from {list(WORLDS)})")
