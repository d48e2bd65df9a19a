-- report: score_bins
-- inputs: scored
-- grain: one row per split, label and score bin (50 bins of width 0.02)
-- doc: Score distribution of each split's test side by label.
SELECT split,
       label,
       least(CAST(floor(score * 50) AS BIGINT), 49) AS bin,
       count(*) AS connections
FROM scored
WHERE side = 'test'
GROUP BY split, label, least(CAST(floor(score * 50) AS BIGINT), 49)
