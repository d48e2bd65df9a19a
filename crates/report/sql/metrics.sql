-- report: metrics
-- inputs: metrics
-- grain: one row per split's test side and per evaluation input
-- doc: The metrics table as the report shows it.
SELECT split, side, data, rows, positives, roc_auc, pr_auc, precision, recall, f1, fpr,
       threshold, threshold_rule, tp, fp, tn, fn
FROM metrics
