"""`synth-log`: write a synthetic interaction log in the UserBehavior layout, any size (scale tests).

user_id,item_id,category_id,behavior_type,timestamp; no header; grouped by user, time-ordered
within a user, as the Taobao file is. Proportions follow UserBehavior's (about 100 events per user,
an item catalogue 40x the user count with Zipf-like popularity, 2.5 items per category... scaled;
pv 89.5 %, cart 5.5 %, fav 2.9 %, buy 2.1 %; nine days of timestamps). Deterministic by seed.
Written block by block with pyarrow's CSV writer, so memory stays bounded at any size.
"""
import argparse
import os
import sys
import time

import numpy as np

TYPES = np.array(["pv", "cart", "fav", "buy"])
TYPE_P = np.array([0.895, 0.055, 0.029, 0.021])
START = 1511539200  # 2017-11-25 00:00 Beijing time
SPAN = 9 * 86400


def write_log(path, rows, seed=0, events_per_user=100, block_users=20000, progress=None):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    rng = np.random.default_rng([seed, 0x106])
    n_users = max(1, rows // events_per_user)
    n_items = max(10, rows // 25)
    n_cats = max(2, n_items // 400)
    item_cat = rng.integers(n_cats, size=n_items)
    # Zipf-like popularity: item rank r drawn with weight 1 / (r + 10)
    w = 1.0 / (np.arange(n_items) + 10.0)
    cdf = np.cumsum(w / w.sum())
    # events per user: a long-tailed spread around the mean, adjusted to sum to `rows`
    per_user = rng.gamma(1.2, events_per_user / 1.2, size=n_users) + 1
    per_user = np.maximum(1, np.round(per_user * rows / per_user.sum())).astype(np.int64)
    per_user[-1] += rows - per_user.sum()
    while per_user[-1] < 1:  # give back the excess from the largest users
        j = int(np.argmax(per_user[:-1]))
        take = min(per_user[j] - 1, 1 - per_user[-1])
        per_user[j] -= take
        per_user[-1] += take
    tmp = f"{path}.tmp{os.getpid()}"
    written = 0
    opts = pcsv.WriteOptions(include_header=False, quoting_style="none")
    try:
        with pcsv.CSVWriter(tmp, pa.schema([("u", pa.int64()), ("i", pa.int64()), ("c", pa.int64()),
                                            ("b", pa.string()), ("t", pa.int64())]), write_options=opts) as wr:
            for lo in range(0, n_users, block_users):
                cnt = per_user[lo:lo + block_users]
                users = np.repeat(np.arange(lo, lo + len(cnt)) + 100, cnt)
                n = len(users)
                item = np.searchsorted(cdf, rng.random(n))
                ts = START + rng.integers(SPAN, size=n)
                order = np.lexsort((ts, users))
                users, item, ts = users[order], item[order], ts[order]
                btype = TYPES[np.searchsorted(np.cumsum(TYPE_P), rng.random(n) * 0.99999)]
                wr.write_table(pa.table({"u": users, "i": item + 1, "c": item_cat[item] + 1, "b": btype, "t": ts}))
                written += n
                if progress:
                    progress(written)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m dtrn_ref synth-log", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, required=True, help="events to write")
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error("--rows must be at least 1")
    t0 = time.time()
    last = [0.0]

    def progress(n):
        if time.time() - last[0] > 2:
            last[0] = time.time()
            print(f"synth-log: {n}/{args.rows} rows", file=sys.stderr, flush=True)

    n = write_log(args.out, args.rows, args.seed, progress=progress)
    print(f"synth-log: wrote {n} rows to {args.out} ({time.time() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
