-- stage: host_features
-- inputs: clean, hosts
-- grain: one row per (src_ip, window_start) with at least one labelled connection
-- doc: Host windows with a 0/1 `label`: 1 when any of the source's connections in the window has label_text = $positive_label.
--
-- Windows are computed exactly as in hosts.sql. Unlabelled connections
-- (label_text NULL) do not vote; windows with none labelled are left out.
WITH labels AS (
    SELECT
        src_ip,
        floor(ts / CAST($host_window_seconds AS DOUBLE)) * CAST($host_window_seconds AS DOUBLE) AS window_start,
        max(CASE
                WHEN label_text IS NULL THEN NULL
                WHEN label_text = CAST($positive_label AS VARCHAR) THEN 1
                ELSE 0
            END) AS label
    FROM clean
    WHERE ts IS NOT NULL AND src_ip IS NOT NULL
    GROUP BY 1, 2
)
SELECT h.*, l.label
FROM hosts h
JOIN labels l ON h.src_ip = l.src_ip AND h.window_start = l.window_start
WHERE l.label IS NOT NULL
