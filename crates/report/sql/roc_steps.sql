-- report: roc_steps
-- inputs: scored
-- grain: one row per split and distinct test-side score
-- doc: Positive and negative counts at each distinct score of a split's test side, the steps of its ROC and precision-recall curves.
SELECT split,
       score,
       sum(CASE WHEN label = 1 THEN 1 ELSE 0 END) AS positives,
       sum(CASE WHEN label = 1 THEN 0 ELSE 1 END) AS negatives
FROM scored
WHERE side = 'test'
GROUP BY split, score
