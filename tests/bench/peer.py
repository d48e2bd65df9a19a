"""The peer the pipeline is measured against: the reference notebook's work
in pandas + LightGBM's Python package (one random stratified split, the
same rounds), timed per phase. Usage: python3 peer.py DATA_DIR [ROUNDS]"""
import glob
import re
import resource
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

data_dir = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
t0 = time.perf_counter()
frames = [pd.read_csv(p) for p in sorted(glob.glob(f"{data_dir}/*.csv"))]
df = pd.concat(frames, ignore_index=True)
t1 = time.perf_counter()
df = df.dropna()
df["label"] = (df["mitre_attack_tactics"] == "Reconnaissance").astype(int)
df = pd.get_dummies(df, columns=["protocol", "conn_state", "service"], drop_first=True)
features = ["duration", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "src_port", "dest_port"]
features += [c for c in df.columns if c.startswith(("protocol_", "conn_state_", "service_"))]
print("features:", " ".join(features), file=sys.stderr)
X = df[features].astype(np.float32)
# LightGBM refuses JSON special characters in names ("service_smb,gssapi").
X.columns = [re.sub(r"[^0-9A-Za-z_]", "_", c) for c in X.columns]
y = df["label"]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=42
)
t2 = time.perf_counter()
model = lgb.LGBMClassifier(n_estimators=rounds, is_unbalance=True, verbose=-1)
model.fit(X_train, y_train)
t3 = time.perf_counter()
scores = model.predict_proba(X_test)[:, 1]
t4 = time.perf_counter()
auc = roc_auc_score(y_test, scores)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peer rows={len(df)} features={len(features)} read_csv={t1-t0:.2f}s prepare={t2-t1:.2f}s fit={t3-t2:.2f}s "
      f"predict={t4-t3:.2f}s total={t4-t0:.2f}s peak_rss={peak:.0f}MiB roc_auc={auc:.6f}")
