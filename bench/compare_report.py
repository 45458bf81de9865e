#!/usr/bin/env python3
"""Summarise a `bench/compare.sh` results file (JSON lines tagged with who, cfg and round).

    python3 bench/compare_report.py bench/results-<date>.jsonl

Every ratio is computed within one round (the three implementations ran back to back, each a
fresh process) and reported as the median over rounds with its min–max. Files from before the
rounds (no "round" field) read as one round. The last section checks the targets of the second
performance pass (issue 16) on the medians.
"""
import json
import statistics
import sys


def load(path):
    """(results by cfg, round and who; the host record, or None in files from before it)."""
    by, host = {}, None
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        if r["who"] == "host":
            host = r
            continue
        by.setdefault(r["cfg"], {}).setdefault(r.get("round", 1), {})[r["who"]] = r
    return by, host


def spread(values, d=2, suffix="×"):
    """'median [min–max]' of the values, or '—' when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return "—", None
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m:.{d}f}{suffix}", m
    return f"{m:.{d}f}{suffix} [{min(values):.{d}f}–{max(values):.{d}f}]", m


def per_round(rounds, fn):
    return [fn(d) for d in rounds.values()]


def ratio(d, a, b, fn):
    """fn(d[a], d[b]) when both ran in this round."""
    return fn(d[a], d[b]) if a in d and b in d else None


def load_range(rounds, whos):
    loads = [x for d in rounds.values() for w in whos if w in d
             for x in d[w].get("loadavg_1m_start_end", [])]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"


def main(path):
    by, host = load(path)
    if host:
        print(f"host: {host['cpu']} ({' '.join(host['isa']) or 'no AVX2'}), {host['cores']} cores, "
              f"{host['threads']} threads per run; torch {host['torch']}, "
              f"spikingjelly {host['spikingjelly']}.")
        print()
    train = {cfg: r for cfg, r in by.items() if any("tks" in d for d in r.values())}
    medians = {}
    n_rounds = max((len(r) for r in by.values()), default=0)
    print(f"{n_rounds} round(s) per configuration; each cell: median over rounds [min–max].")
    print()
    if train:  # (an inference-only run, CONFIGS=" ", has no training table)
        print("| config | fastest step ms, median: PyTorch · SJ · tks | tks/PyTorch throughput "
              "(by fastest step) | tks/SJ throughput (by fastest step) | tks/PyTorch (by mean step) "
              "| peak RSS MiB, median: PyTorch · SJ · tks | tks/PyTorch memory | tks/SJ memory "
              "| tks CPU util | load avg |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    fastest = lambda o, k: o["ms_per_step_min"] / k["ms_per_step_min"]
    by_mean = lambda o, k: o["ms_per_step"] / k["ms_per_step"]
    memory = lambda o, k: k["peak_rss_mib"] / o["peak_rss_mib"]
    slower = lambda o, k: k["ms_per_step_min"] / o["ms_per_step_min"]
    for cfg, rounds in train.items():
        model, T = cfg.split(":")
        any_tks = next(d["tks"] for d in rounds.values() if "tks" in d)
        name = f"{model} T={T} B={any_tks['batch']}"

        def med(who, field):
            vals = [d[who][field] for d in rounds.values() if who in d]
            return f"{statistics.median(vals):.0f}" if vals else "—"

        cells = {}
        for key, a, fn in [("thr_torch", "torch", fastest), ("thr_sj", "sj", fastest),
                           ("mean_torch", "torch", by_mean), ("mem_torch", "torch", memory),
                           ("mem_sj", "sj", memory)]:
            cells[key], medians[(cfg, key)] = spread(per_round(rounds, lambda d: ratio(d, a, "tks", fn)))
        util, _ = spread(per_round(rounds, lambda d: d["tks"]["cpu_utilisation"] if "tks" in d else None),
                         suffix="")
        print(f"| {name} | {med('torch', 'ms_per_step_min')} · {med('sj', 'ms_per_step_min')} · "
              f"{med('tks', 'ms_per_step_min')} | {cells['thr_torch']} | {cells['thr_sj']} "
              f"| {cells['mean_torch']} | {med('torch', 'peak_rss_mib')} · {med('sj', 'peak_rss_mib')} · "
              f"{med('tks', 'peak_rss_mib')} | {cells['mem_torch']} | {cells['mem_sj']} | {util} "
              f"| {load_range(rounds, ['torch', 'sj', 'tks'])} |")

    # tks's own memory against T: peak RSS at each T over the peak at the smallest T of the model
    models = {}
    for cfg, rounds in train.items():
        model, T = cfg.split(":")
        peaks = [d["tks"]["peak_rss_mib"] for d in rounds.values() if "tks" in d]
        models.setdefault(model, {})[int(T)] = statistics.median(peaks)
    scaling = []
    for model, peaks in models.items():
        if len(peaks) > 1:
            t0 = min(peaks)
            for T in sorted(peaks):
                if T != t0:
                    medians[(f"{model}:{T}", "mem_vs_T")] = peaks[T] / peaks[t0]
                    scaling.append(f"{model}: T={T} / T={t0} = {peaks[T]:.0f} / {peaks[t0]:.0f} MiB "
                                   f"= {peaks[T] / peaks[t0]:.2f}×")
    if scaling:
        print()
        print("tks peak training memory against T (medians over rounds): " + "; ".join(scaling) + ".")

    # the memory-lean policy (conv inputs as bytes, conv outputs recomputed): memory and time cost
    lean = {cfg: r for cfg, r in train.items() if any("tks-lean" in d for d in r.values())}
    if lean:
        print()
        print("Memory-lean kernel policy (`TKS_RECOMPUTE_CONV=1 TKS_PACK_SPIKES=1`) against plain tks, "
              "same rounds:")
        print()
        print("| config | peak RSS MiB, median: tks · lean | lean/tks memory | lean/PyTorch memory "
              "| lean step time / tks step time (fastest step) | lean/PyTorch throughput |")
        print("|---|---|---|---|---|---|")
        lean_peaks = {}
        for cfg, rounds in lean.items():
            model, T = cfg.split(":")
            peaks = [d["tks-lean"]["peak_rss_mib"] for d in rounds.values() if "tks-lean" in d]
            lean_peaks.setdefault(model, {})[int(T)] = statistics.median(peaks)
            mem, _ = spread(per_round(rounds, lambda d: ratio(d, "tks", "tks-lean", memory)))
            mem_t, medians[(cfg, "lean_mem_torch")] = spread(
                per_round(rounds, lambda d: ratio(d, "torch", "tks-lean", memory)))
            cost, medians[(cfg, "lean_cost")] = spread(
                per_round(rounds, lambda d: ratio(d, "tks", "tks-lean", slower)))
            thr, _ = spread(per_round(rounds, lambda d: ratio(d, "torch", "tks-lean", fastest)))
            plain = [d["tks"]["peak_rss_mib"] for d in rounds.values() if "tks" in d]
            print(f"| {model} T={T} | {statistics.median(plain):.0f} · {statistics.median(peaks):.0f} | {mem} "
                  f"| {mem_t} | {cost} | {thr} |")
        for model, peaks in lean_peaks.items():
            if len(peaks) > 1:
                t0, t1 = min(peaks), max(peaks)
                medians[(f"{model}:{t1}", "lean_mem_vs_T")] = peaks[t1] / peaks[t0]
                print()
                print(f"lean peak against T: {model} T={t1} / T={t0} = {peaks[t1]:.0f} / {peaks[t0]:.0f} MiB "
                      f"= {peaks[t1] / peaks[t0]:.2f}×.")

    infer = {cfg: r for cfg, r in by.items() if any("tks-infer" in d for d in r.values())}
    if infer:
        print()
        print("Inference (eval mode, forward passes after the training warm-up):")
        print()
        print("| config | ms/pass median: PyTorch · SJ · tks dense · tks spike-aware | tks/PyTorch "
              "throughput | tks/SJ throughput | tks spike-aware/dense | conv input density "
              "(sparse calls) | load avg |")
        print("|---|---|---|---|---|---|---|")
        pass_ms = lambda o, k: o["ms_per_step_median"] / k["ms_per_step_median"]
        for cfg, rounds in infer.items():
            model, T = cfg.split(":")
            k0 = next(d["tks-infer"] for d in rounds.values() if "tks-infer" in d)

            def med(who, get=lambda o: o["ms_per_step_median"]):
                vals = [get(d[who]) for d in rounds.values() if who in d]
                return f"{statistics.median(vals):.1f}" if vals else "—"

            t_cell, medians[(cfg, "infer_torch")] = spread(
                per_round(rounds, lambda d: ratio(d, "torch-infer", "tks-infer", pass_ms)))
            s_cell, _ = spread(per_round(rounds, lambda d: ratio(d, "sj-infer", "tks-infer", pass_ms)))
            sa_cell, _ = spread(per_round(
                rounds, lambda d: d["tks-infer"]["dense"]["ms_per_step_median"]
                / d["tks-infer"]["ms_per_step_median"] if "tks-infer" in d else None))
            conv = k0["conv"]
            print(f"| {model} T={T} B={k0['batch']} | {med('torch-infer')} · {med('sj-infer')} · "
                  f"{med('tks-infer', lambda o: o['dense']['ms_per_step_median'])} · {med('tks-infer')} "
                  f"| {t_cell} | {s_cell} | {sa_cell} | {conv['mean_input_density']:.3f} "
                  f"({conv['sparse_calls']}/{conv['calls']}) "
                  f"| {load_range(rounds, ['torch-infer', 'sj-infer', 'tks-infer'])} |")

    print()
    print("Targets (issue 16), on the medians:")
    checks = []
    for cfg in ("vggsnn:4", "vggsnn:8", "smallcnn:4"):
        for key, what in (("thr_torch", "PyTorch"), ("thr_sj", "SpikingJelly")):
            checks.append((f"{cfg} training ≥ 1.5× {what} (fastest step)", medians.get((cfg, key)),
                           lambda v: v >= 1.5))
    checks.append(("vggsnn:16 peak training memory ≤ 0.15× PyTorch", medians.get(("vggsnn:16", "mem_torch")),
                   lambda v: v <= 0.15))
    checks.append(("vggsnn:16 tks peak memory ≤ 1.5× its T=4 peak", medians.get(("vggsnn:16", "mem_vs_T")),
                   lambda v: v <= 1.5))
    checks.append(("vggsnn:16 peak training memory ≤ 0.15× PyTorch, memory-lean policy",
                   medians.get(("vggsnn:16", "lean_mem_torch")), lambda v: v <= 0.15))
    checks.append(("vggsnn:16 tks peak memory ≤ 1.5× its T=4 peak, memory-lean policy",
                   medians.get(("vggsnn:16", "lean_mem_vs_T")), lambda v: v <= 1.5))
    checks.append(("vggsnn:4 spike-aware inference ≥ 2× PyTorch eval", medians.get(("vggsnn:4", "infer_torch")),
                   lambda v: v >= 2.0))
    for what, value, ok in checks:
        verdict = "not measured" if value is None else ("met" if ok(value) else "NOT met")
        shown = "" if value is None else f" {value:.2f}×:"
        print(f"- {what}:{shown} {verdict}")
    print()
    print("throughput ratio > 1: tks faster; memory ratio < 1: tks leaner. A 1-minute load average "
          "above ~0.5 on this machine means other processes competed for the cores: the ratios are "
          "then noisy (PyTorch's OpenMP threads suffer most).")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: compare_report.py RESULTS.jsonl")
    main(sys.argv[1])
