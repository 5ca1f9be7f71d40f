#!/usr/bin/env python3
"""The peer of `fleetward bench gate`: the same work in pandas + scipy, as an SRE would script it.

Reads the updated hosts' samples and the baseline (long form: host, timestamp, metric, value),
joins each host's group from the inventory, reduces every host x metric to its mean, median and
p99 (events summed), then per group x metric compares the updated hosts' means with the
baseline hosts' means (Welch's t-test, scipy) and prints one JSON line: groups compared, the
smallest p-value, and the wall time. `fleetward bench gate` runs it in a child process and reads
its peak RSS from wait4, as for fleetward's own gate.

usage: gate_peer.py INVENTORY.toml SAMPLES.parquet BASELINE.parquet
"""
import json
import sys
import time
import tomllib

import pandas as pd
from scipy import stats

EVENTS = {"unexpected_reboots", "kernel_panics", "kernel_errors", "app_errors"}


def host_values(path, groups):
    df = pd.read_parquet(path, columns=["host", "timestamp", "metric", "value"])
    df = df.merge(groups, on="host", how="inner")
    events = df["metric"].isin(EVENTS)
    g = df[~events].groupby(["group", "host", "metric"], observed=True)["value"]
    agg = g.agg(["count", "mean", "median"])
    agg.columns = ["n", "mean", "median"]
    agg["p99"] = g.quantile(0.99)
    ev = df[events].groupby(["group", "host", "metric"], observed=True)["value"].sum()
    return agg.reset_index(), ev


def main():
    inv, samples, baseline = sys.argv[1:4]
    t0 = time.perf_counter()
    with open(inv, "rb") as f:
        hosts = tomllib.load(f)["hosts"]
    groups = pd.DataFrame(
        {
            "host": [h["name"] for h in hosts],
            "group": [f"{h['hardware']}/{h['workload']}" for h in hosts],
        }
    )
    up, _ = host_values(samples, groups)
    base, _ = host_values(baseline, groups)
    base = base[~base["host"].isin(set(up["host"]))]
    compared, p_min = 0, 1.0
    b = {k: v["mean"].to_numpy() for k, v in base.groupby(["group", "metric"])}
    for key, u in up.groupby(["group", "metric"]):
        c = b.get(key)
        if c is None or len(u) < 2 or len(c) < 2:
            continue
        p = stats.ttest_ind(u["mean"].to_numpy(), c, equal_var=False).pvalue
        compared += 1
        p_min = min(p_min, float(p))
    print(
        json.dumps(
            {
                "groups_x_metrics": compared,
                "p_min": p_min,
                "seconds": time.perf_counter() - t0,
            }
        )
    )


if __name__ == "__main__":
    main()
