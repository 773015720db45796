"""Core facility-month indicators computed from the engine's claims store
with pandas and with DuckDB SQL, timed against `bhyt features` on the same
Parquet files, in one run.

usage: features_compare.py DATA_DIR BHYT_BINARY
Core indicators: visits, outpatient/inpatient average cost, ALOS, admission
rate, bed-day cost share of inpatient cost, out-of-province share of visits.
(The engine computes these and much more: case mix, peers, growth, budget.)
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

import duckdb
import pandas as pd

data, binary = sys.argv[1], sys.argv[2]
V = ["facility_code", "ma_lk", "source_seq", "discharge_date", "total_cost", "inpatient", "los_days", "out_of_province"]
L = ["facility_code", "ma_lk", "source_seq", "category", "amount"]


def pandas_core():
    v = pd.concat(pd.read_parquet(f, columns=V) for f in sorted(glob.glob(f"{data}/visits/**/*.parquet", recursive=True)))
    l = pd.concat(pd.read_parquet(f, columns=L) for f in sorted(glob.glob(f"{data}/lines/**/*.parquet", recursive=True)))
    bed = l[l.category == "bed"].groupby(["facility_code", "ma_lk", "source_seq"], as_index=False).amount.sum()
    v = v.merge(bed, how="left", on=["facility_code", "ma_lk", "source_seq"]).fillna({"amount": 0.0})
    v["month"] = pd.to_datetime(v.discharge_date).dt.to_period("M")
    v["op_cost"] = v.total_cost.where(~v.inpatient)
    v["ip_cost"] = v.total_cost.where(v.inpatient)
    v["ip_los"] = v.los_days.where(v.inpatient)
    v["ip_bed"] = v.amount.where(v.inpatient)
    g = v.groupby(["facility_code", "month"])
    out = pd.DataFrame({
        "visits": g.size(),
        "avg_cost_outpatient": g.op_cost.mean(),
        "avg_cost_inpatient": g.ip_cost.mean(),
        "alos": g.ip_los.mean(),
        "admission_rate": g.inpatient.mean(),
        "bed_cost_share_inpatient": g.ip_bed.sum() / g.ip_cost.sum(),
        "oop_visit_share": g.out_of_province.mean(),
    })
    return len(out)


def duckdb_core():
    con = duckdb.connect()
    q = f"""
    with bed as (
      select facility_code, ma_lk, source_seq, sum(amount) as bed
      from read_parquet('{data}/lines/**/*.parquet', hive_partitioning=false)
      where category = 'bed' group by all),
    v as (
      select v.*, coalesce(bed.bed, 0) as bed
      from read_parquet('{data}/visits/**/*.parquet', hive_partitioning=false) v
      left join bed using (facility_code, ma_lk, source_seq))
    select facility_code, date_trunc('month', discharge_date) as month, count(*) as visits,
      avg(total_cost) filter (where not inpatient) as avg_cost_outpatient,
      avg(total_cost) filter (where inpatient) as avg_cost_inpatient,
      avg(los_days) filter (where inpatient) as alos,
      avg(inpatient::int) as admission_rate,
      sum(bed) filter (where inpatient) / sum(total_cost) filter (where inpatient) as bed_cost_share_inpatient,
      avg(out_of_province::int) as oop_visit_share
    from v group by all
    """
    return len(con.execute(q).fetchall())


def engine(core):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "features", "--data-dir", data, "--period", "month", "--out", out]
                       + (["--core"] if core else []), check=True, stdout=subprocess.DEVNULL)
    return None


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


tf, _ = timed(lambda: engine(False))
te, _ = timed(lambda: engine(True))
tp, np_ = timed(pandas_core)
td, nd = timed(duckdb_core)
print(f"engine (bhyt features, full table with case mix, peers, growth, budget): {tf:6.2f} s")
print(f"engine (bhyt features --core, core indicators): {te:6.2f} s")
print(f"pandas {pd.__version__} (core indicators): {tp:6.2f} s  ({np_} rows)  pandas/engine = {tp/te:5.2f}x")
print(f"duckdb {duckdb.__version__} (core indicators): {td:6.2f} s  ({nd} rows)  duckdb/engine = {td/te:5.2f}x")
