"""scikit-learn IsolationForest beside the engine, on the same tables.

Rankings compared (a facility's score is its largest over the periods, as
in `bhyt evaluate`; positives are facilities with an injected fraud):
  1. the engine's ensemble severity (scores.parquet);
  2. the engine's own isolation forest (windowed, calibrated: sev_forest);
  3. sklearn IsolationForest on the engine's multivariate inputs
     (multivariate.parquet: change and peer z-scores), fitted on the same
     training rows, scores averaged over the same 4-period window;
  4. sklearn IsolationForest on the raw indicator table (facility_period,
     each column standardised), the obvious approach.
Also: rank correlation between the engine's and sklearn's per-row forest
scores on identical inputs.
"""
import sys
import warnings
import time

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

warnings.filterwarnings("ignore", category=RuntimeWarning)
out_dir, features_path, labels_path = sys.argv[1:4]
labels = pl.read_csv(labels_path, schema_overrides={"facility_code": pl.Utf8})
fraud = set(labels.filter(~pl.col("benign"))["facility_code"].to_list())


def rank(df, col):
    f = df.group_by("facility_code").agg(pl.col(col).max().alias("s")).sort("facility_code")
    y = np.array([c in fraud for c in f["facility_code"]])
    s = f["s"].fill_null(0).to_numpy()
    k = len(fraud)
    top = np.argsort(-s, kind="stable")[:k]
    return roc_auc_score(y, s), average_precision_score(y, s), y[top].mean()


def windowed(df, col, w=4):
    return df.sort(["facility_code", "period_start"]).with_columns(
        pl.col(col).rolling_mean(w, min_samples=1).over("facility_code").alias(col)
    )


rows = []
scores = pl.read_parquet(f"{out_dir}/scores.parquet")
rows.append(("engine ensemble (severity)", *rank(scores, "severity"), None))
rows.append(("engine isolation forest (sev_forest)", *rank(scores, "sev_forest"), None))

mv = pl.read_parquet(f"{out_dir}/multivariate.parquet")
feat = [c for c in mv.columns if c.startswith(("change_z:", "peer_z:"))]
x = mv.select(feat).to_numpy()
train = mv["training"].to_numpy()
t = time.perf_counter()
sk = IsolationForest(n_estimators=200, max_samples=256, random_state=130).fit(x[train])
s = -sk.score_samples(x)
secs = time.perf_counter() - t
rho = pl.DataFrame({"a": s, "b": mv["forest_score"].to_numpy()}).select(
    pl.corr("a", "b", method="spearman")
).item()
mv = mv.with_columns(pl.Series("sk", s))
rows.append(("sklearn IF, engine inputs, 4-period window", *rank(windowed(mv, "sk"), "sk"), secs))

fp = pl.read_parquet(features_path)
num = [
    c
    for c, d in fp.schema.items()
    if d.is_numeric() and not c.endswith(("_peer_ratio", "_peer_z", "_yoy", "_trend")) and c not in ("peer_size", "peer_n")
]
raw = fp.select(["facility_code", "period_start"] + num).fill_nan(None)
m = raw.select(num).to_numpy().astype(float)
med = np.nanmedian(m, axis=0)
sd = np.nanstd(m, axis=0)
sd[~np.isfinite(sd) | (sd == 0)] = 1.0
z = np.nan_to_num((m - med) / sd)
t = time.perf_counter()
sk2 = IsolationForest(n_estimators=200, max_samples=256, random_state=130).fit(z)
s2 = -sk2.score_samples(z)
secs2 = time.perf_counter() - t
raw = raw.with_columns(pl.Series("sk", s2))
rows.append((f"sklearn IF, raw indicators ({len(num)} columns)", *rank(raw, "sk"), secs2))

print(f"facilities: {scores['facility_code'].n_unique()}, with fraud: {len(fraud)}")
print(f"Spearman rank correlation, engine vs sklearn forest scores on the same rows: {rho:.3f}")
print()
print("| ranking | ROC-AUC | PR-AUC | precision@k | sklearn fit+score s |")
print("|---|---|---|---|---|")
for name, auc, ap, pk, secs in rows:
    s = f"{secs:.2f}" if secs is not None else ""
    print(f"| {name} | {auc:.3f} | {ap:.3f} | {pk:.3f} | {s} |")
