-- report: importance
-- inputs: feature_importance
-- grain: one row per split and feature
-- doc: Total gain of each feature in each split's model, largest first.
SELECT split, feature, gain, splits
FROM feature_importance
ORDER BY split, gain DESC, feature
