-- stage: beacon_histograms
-- inputs: beacon_scope
-- grain: one row per pair listed in `beacons`, in the windows being scored
-- doc: Each pair's connection histogram over its window ($hist_bins bins): bars, counts, the two fullest height buckets and the longest run of bars, for the histogram and duration scores of `beacons`.
--
-- Definitions are in beacons.sql. A stage of its own so that the bins are
-- counted once, and apart from the other parts of the beacon score.
WITH params AS (
    SELECT
        CAST($hist_bins AS BIGINT)                 AS bins,
        CAST($hist_mode_sensitivity AS DOUBLE)     AS mode_sensitivity
),
bounds AS (
    SELECT window_start, min(sec) AS t_min, max(sec) AS t_max
    FROM beacon_scope WHERE keep GROUP BY window_start
),
bins AS (
    SELECT c.pair_id,
           CASE WHEN b.t_max > b.t_min
                THEN least(CAST(floor((c.sec - b.t_min) / ((b.t_max - b.t_min) / p.bins)) AS BIGINT), p.bins - 1)
                ELSE 0 END AS bin,
           count(*) AS c
    -- The small sides first: DataFusion builds a hash join's left side in
    -- memory, and cannot spill it.
    FROM params p
    CROSS JOIN bounds b
    JOIN beacon_scope c ON c.window_start = b.window_start
    WHERE c.eligible
    GROUP BY 1, 2
),
bars AS (
    SELECT pair_id, count(*) AS bars, max(c) AS tallest,
           CAST(sum(c) AS DOUBLE) AS n, CAST(sum(c * c) AS DOUBLE) AS sum_sq
    FROM bins GROUP BY pair_id
),
-- Bars grouped by height (RITA's frequency histogram), fullest buckets first.
buckets AS (
    SELECT pair_id, fill,
           row_number() OVER (PARTITION BY pair_id ORDER BY fill DESC) AS place
    FROM (
        SELECT s.pair_id, count(*) AS fill
        FROM params p
        CROSS JOIN bars t
        JOIN bins s ON s.pair_id = t.pair_id
        GROUP BY s.pair_id, floor(s.c / ceil(t.tallest * p.mode_sensitivity))
    ) f
),
bimodal AS (
    SELECT pair_id, sum(fill) AS top_two FROM buckets WHERE place <= 2 GROUP BY pair_id
),
islands AS (
    SELECT pair_id, bin, bin - row_number() OVER (PARTITION BY pair_id ORDER BY bin) AS island
    FROM bins
),
runs AS (
    SELECT pair_id, count(*) AS len, min(bin) AS lo, max(bin) AS hi
    FROM islands GROUP BY pair_id, island
),
-- The longest run of consecutive bars, wrapping from the last bin to the first.
longest AS (
    SELECT r.pair_id,
           CASE WHEN sum(r.len) = max(p.bins) THEN max(p.bins)
                WHEN sum(CASE WHEN r.lo = 0 THEN r.len ELSE 0 END) > 0
                 AND sum(CASE WHEN r.hi = p.bins - 1 THEN r.len ELSE 0 END) > 0
                THEN greatest(max(r.len), sum(CASE WHEN r.lo = 0 OR r.hi = p.bins - 1 THEN r.len ELSE 0 END))
                ELSE max(r.len) END AS run
    FROM params p CROSS JOIN runs r
    GROUP BY r.pair_id, p.bins
)
SELECT t.pair_id, t.bars, t.n, t.sum_sq, bm.top_two, l.run
FROM bars t
JOIN longest l ON t.pair_id = l.pair_id
LEFT JOIN bimodal bm ON t.pair_id = bm.pair_id
