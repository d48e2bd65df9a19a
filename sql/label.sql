-- stage: labeled
-- inputs: clean
-- grain: one row per connection
-- doc: Adds the 0/1 target `label` (label_text = $positive_label); unlabelled rows get NULL.
SELECT
    clean.*,
    CASE
        WHEN label_text IS NULL THEN NULL
        WHEN label_text = $positive_label THEN 1
        ELSE 0
    END AS label
FROM clean
