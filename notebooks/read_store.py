"""Reads the claims store's Delta tables as another engine would (Python
`deltalake` and `polars`, nothing of the engine) and prints what they hold
as JSON: rows and amounts of every visit version, of the current visits
(`visits` anti-joined with `superseded` on visit_key), and of lines.

usage: read_store.py DATA_DIR
"""
import json
import os
import sys

import polars as pl
from deltalake import DeltaTable

data = sys.argv[1]


def table(name):
    path = os.path.join(data, name)
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return None
    return pl.read_delta(path)


visits = table("visits")
lines = table("lines")
superseded = table("superseded")
if superseded is None:
    superseded = pl.DataFrame({"visit_key": pl.Series([], dtype=pl.Int64)})
current = visits.join(superseded.select("visit_key"), on="visit_key", how="anti")
current_lines = lines.join(superseded.select("visit_key"), on="visit_key", how="anti")
dt = DeltaTable(os.path.join(data, "visits"))
print(
    json.dumps(
        {
            "visits_all_versions": visits.height,
            "visits": current.height,
            "total_cost": float(current["total_cost"].sum()),
            "lines": current_lines.height,
            "amount": float(current_lines["amount"].sum()),
            "partition_columns": dt.metadata().partition_columns,
            "year_dtype": str(visits.schema["year"]),
            "month_values": sorted(current["month"].unique().to_list()),
            "version": dt.version(),
        }
    )
)
