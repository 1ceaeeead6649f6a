#!/usr/bin/env python3
"""Summarizes the rounds bench/gateway/run.sh recorded (a TSV) as Markdown tables:
per setting and target the median and spread of requests/s, median p50/p99, CPU
time and context switches per request; then the median of the per-round
gateway/bare ratios."""

import csv
import statistics
import sys
from collections import defaultdict


def micros(text: str) -> float:
    """wrk's latency ("850.00us", "1.23ms", "2.00s") in microseconds."""
    for unit, factor in (("us", 1.0), ("ms", 1e3), ("s", 1e6)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


def median(values):
    values = [float(v) for v in values if v not in ("-", "")]
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def main(path: str) -> None:
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    targets = ["direct", "bare", "default", "full"]
    for setting in settings:
        of = defaultdict(list)
        for r in rows:
            if r["setting"] == setting:
                of[r["target"]].append(r)
        rounds = len(of["bare"])
        print(f"\n### {setting} ({rounds} rounds)\n")
        print("| target | req/s median | min-max | p50 µs | p99 µs | non-2xx | CPU user µs/req | CPU sys µs/req "
              "| ctx switches/req |")
        print("|---|---|---|---|---|---|---|---|---|")
        for t in targets:
            rs = of[t]
            rps = [float(r["rps"]) for r in rs]
            print(f"| {t} | {fmt(median(rps), 0)} | {fmt(min(rps), 0)}-{fmt(max(rps), 0)} "
                  f"| {fmt(median(micros(r['p50']) for r in rs))} | {fmt(median(micros(r['p99']) for r in rs))} "
                  f"| {sum(int(r['non2xx']) for r in rs)} "
                  f"| {fmt(median(r['user_us'] for r in rs), 2)} | {fmt(median(r['sys_us'] for r in rs), 2)} "
                  f"| {fmt(median(r['ctxsw'] for r in rs), 3)} |")
        by_round = lambda t: {r["round"]: r for r in of[t]}
        bare = by_round("bare")
        for t in ("default", "full"):
            mine = by_round(t)
            ratios = [float(mine[k]["rps"]) / float(bare[k]["rps"]) for k in bare if k in mine]
            cpu = [float(mine[k]["user_us"]) + float(mine[k]["sys_us"]) - float(bare[k]["user_us"]) - float(bare[k]["sys_us"])
                   for k in bare if k in mine]
            p99 = [micros(mine[k]["p99"]) / micros(bare[k]["p99"]) for k in bare if k in mine]
            print(f"\n{t} / bare: requests/s {statistics.median(ratios):.2f}x "
                  f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}); "
                  f"extra CPU {statistics.median(cpu):.2f} µs/request; p99 {statistics.median(p99):.2f}x")


if __name__ == "__main__":
    main(sys.argv[1])
