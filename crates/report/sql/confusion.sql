-- report: confusion
-- inputs: scored
-- grain: one row per (label, flagged) of the split's test side
-- doc: Confusion counts of split $split at threshold $threshold (a score at or above it is an alert).
SELECT label,
       score >= $threshold AS flagged,
       count(*) AS connections
FROM scored
WHERE side = 'test' AND split = $split
GROUP BY label, score >= $threshold
