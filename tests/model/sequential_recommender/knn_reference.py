"""A slow, row-by-row reading of the formulas of
:mod:`recbole_hiertcn.model.session_knn.scorers`, written independently of the sparse code
(plain Python lists and dicts), for the tests to compare against."""

import math

import numpy as np

from recbole_hiertcn.model.session_knn.decay import position_weight


def exp_or_one(d, scale):
    return 1.0 if scale is None else math.exp(-d / scale)


def training_sessions(log):
    """Sessions of a TrainingLog as dicts, in recency order (end time, then log order)."""
    sessions, current = [], None
    for g in range(len(log.items)):
        new = (current is None or log.users[g] != log.users[g - 1]
               or (log.boundary[g] - log.boundary[g - 1] >= log.gap if log.by_time
                   else log.boundary[g] != log.boundary[g - 1]))
        if new:
            current = {"user": int(log.users[g]), "events": [], "first": log.boundary[g],
                       "last": log.boundary[g], "order": len(sessions),
                       "end": None if log.times is None else float(log.times[g])}
            sessions.append(current)
        current["events"].append(int(log.items[g]))
        current["last"] = log.boundary[g]
        if log.times is not None:
            current["end"] = float(log.times[g])
    for s in sessions:
        s["pos"] = {item: p + 1 for p, item in enumerate(s["events"])}  # most recent wins
        s["set"] = set(s["events"])
    if all(s["end"] is not None for s in sessions):
        sessions.sort(key=lambda s: (s["end"], s["order"]))
    for number, s in enumerate(sessions):
        s["number"] = number
    return sessions


def row_parts(rows, b, extend_length=0):
    """(history items, running items, earlier sessions [E_1, E_2, ...] as lists, query)."""
    n = int(rows.lengths[b])
    items = [int(v) for v in rows.items[b, :n]]
    opens = [bool(v) for v in rows.opens[b, :n + 1]]
    session = np.cumsum(opens) - 1
    target = session[n]
    running = [items[j] for j in range(n) if session[j] == target]
    earlier = {}
    for j in range(n):
        if session[j] != target:
            earlier.setdefault(int(target - session[j]), []).append(items[j])
    depth = len(running)
    if extend_length and depth < extend_length:
        depth = min(extend_length, n)
    query = items[n - depth:] if depth else []
    return items, running, [earlier[e] for e in sorted(earlier)], query


def own_session(sessions, rows, b, running, by_time, gap):
    """The user's training session that the row's running session continues, or None."""
    if not running:
        return None
    n = int(rows.lengths[b])
    user, value = int(rows.users[b]), rows.boundary[b, n - 1]
    matches = [s for s in sessions if s["user"] == user and (
        (s["first"] <= value and value - s["last"] < gap) if by_time else s["first"] == value)]
    return max(matches, key=lambda s: s["order"]) if matches else None


def raw_scores(model, params, log, rows, b, extend_length=0):
    sessions = training_sessions(log)
    n_items = params["n_items"]
    raw = [0.0] * n_items
    items, running, _, query = row_parts(rows, b, extend_length)
    if model == "Popularity":
        return [float(np.sum(log.items == i)) for i in range(n_items)]
    if model == "Repeat":
        pop = [float(np.sum(log.items == i)) for i in range(n_items)]
        return [items.count(i) + pop[i] / (max(pop) + 1) for i in range(n_items)]
    if model == "SR":
        w = lambda d: float(position_weight(params.get("weighting", "div"), d))
        rules = {}
        for s in training_sessions(log):
            ev = s["events"]
            for a in range(len(ev)):
                for c in range(a + 1, min(len(ev), a + params.get("steps", 10) + 1)):
                    rules.setdefault(ev[a], {}).setdefault(ev[c], 0.0)
                    rules[ev[a]][ev[c]] += w(c - a)
        pruning = params.get("pruning", 0)
        if pruning:
            for p, row in rules.items():
                best = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:pruning]
                rules[p] = dict(best)
        for x in range(1, min(params.get("last_items", 1), len(query)) + 1):
            for q, v in rules.get(query[-x], {}).items():
                raw[q] += w(x) * v
        return raw
    if not query:
        return raw
    steps = {}
    for x, item in enumerate(reversed(query), start=1):
        steps.setdefault(item, x)  # the most recent occurrence
    size = len(steps)
    own = own_session(sessions, rows, b, running, log.by_time, log.gap)
    cands = [s for s in sessions if s["set"] & set(steps) and s is not own]
    sample = params.get("sample_size", 0)
    if sample:
        cands = sorted(cands, key=lambda s: s["number"])[-sample:]
    if model == "SKNN":
        qw = {i: 1.0 for i in steps}
    elif model == "VSKNN":
        qw = {i: float(position_weight(params["weighting"], x)) for i, x in steps.items()}
    else:
        qw = {i: exp_or_one(x - 1, params["lambda_spw"]) for i, x in steps.items()}
    t_s = None if rows.times is None else float(rows.times[b, int(rows.lengths[b]) - 1])
    sims = []
    snh = params.get("lambda_snh")
    snh = None if snh is None else snh * 86400.0
    gaps = [abs(t_s - s["end"]) for s in cands] if snh is not None else []
    nearest = min(gaps) if gaps else 0.0
    for s in cands:
        shared = s["set"] & set(steps)
        overlap = sum(qw[i] for i in shared)
        if params.get("similarity", "cosine") == "cosine":
            sim = overlap / math.sqrt(size * len(s["set"]))
        else:
            sim = overlap / len(s["set"] | set(steps))
        if model in ("STAN", "VSTAN") and snh is not None:
            sim *= math.exp(-(abs(t_s - s["end"]) - nearest) / snh)
        sims.append((sim, s["number"], s))
    sims.sort(key=lambda t: (-t[0], -t[1]))
    for sim, _, s in sims[:params["k"]]:
        anchor = min(steps[i] for i in s["set"] & set(steps))
        anchor_item = query[-anchor]
        weight = sim
        if model == "VSKNN":
            weight *= float(position_weight(params["score_weighting"], anchor))
        if model == "VSTAN":
            weight *= exp_or_one(anchor - 1, params["lambda_ipw"])
        for i in s["set"]:
            factor = 1.0
            if model in ("STAN", "VSTAN"):
                factor = exp_or_one(abs(s["pos"][i] - s["pos"][anchor_item]),
                                    params["lambda_inh"])
            raw[i] += weight * factor
    idf_weight = params.get("idf_weight") or params.get("lambda_idf") or 0.0
    if idf_weight:
        total = len(sessions)
        for i in range(n_items):
            holding = sum(1 for s in sessions if i in s["set"])
            raw[i] *= 1.0 + idf_weight * (math.log(total / holding) if holding else 0.0)
    return raw


def final_scores(model, params, log, rows, ext=None):
    """``f`` of every row (module docstring of scorers), row by row."""
    ext = dict(ext or {})
    n_items = params["n_items"]
    pop = [float(np.sum(log.items == i)) for i in range(n_items)]
    out = np.zeros((len(rows.lengths), n_items))
    floors = model in ("Popularity", "Repeat")
    for b in range(len(rows.lengths)):
        extend = ext.get("extend_length", 5) if ext.get("extend") and not floors else 0
        raw = raw_scores(model, params, log, rows, b, extend)
        top = max(raw)
        f = [r / top if top > 0 else 0.0 for r in raw]
        _, running, earlier, query = row_parts(rows, b, extend)
        if ext.get("boost"):
            counts = {}
            for e in earlier:
                for i in set(e):
                    counts[i] = counts.get(i, 0) + 1
            if counts:
                cmax = max(counts.values())
                for i, c in counts.items():
                    f[i] += ext.get("boost_weight", 1.0) * math.log1p(c) / math.log1p(cmax)
        if ext.get("remind"):
            recent = earlier[:ext.get("remind_sessions", 3)]
            m = {}
            if ext.get("remind_strategy", "recency") == "recency":
                for e, items in reversed(list(enumerate(recent, start=1))):
                    for i in items:
                        m[i] = 1.0 / e
            else:
                q = set(query)
                for items in recent:
                    cos = (len(set(items) & q) / math.sqrt(len(q) * len(set(items)))
                           if q else 0.0)
                    for i in set(items):
                        m[i] = m.get(i, 0.0) + cos
                top_m = max(m.values()) if m else 0.0
                m = {i: (v / top_m if top_m > 0 else 0.0) for i, v in m.items()}
            for i, v in m.items():
                f[i] += ext.get("remind_weight", 1.0) * v
        f = [v + (1e-9 * pop[i] / max(pop) if max(pop) > 0 else 0.0) for i, v in enumerate(f)]
        if ext.get("exclude_running_items"):
            for i in running:
                f[i] = -math.inf
        f[0] = -math.inf
        out[b] = f
    return out
