-- stage: beacon_regularity
-- inputs: beacon_scope
-- grain: one row per pair listed in `beacons` with at least 3 non-zero gaps between its timestamps or 3 set orig_ip_bytes, in the windows being scored
-- doc: The timestamp and data size regularity of each pair (RITA's Bowley skew and MAD scores), for `beacons`.
--
-- Definitions are in beacons.sql. A stage of its own so that each of its
-- sorts runs once, and apart from the other parts of the beacon score:
-- under a memory limit they spill rather than share it.
WITH params AS (
    SELECT CAST($bowley_min_iqr AS DOUBLE) AS bowley_min_iqr
),
pair_conns AS (
    SELECT pair_id, sec, orig_ip_bytes FROM beacon_scope WHERE eligible
),
-- The gaps between distinct timestamps are the non-zero gaps between
-- consecutive connections: no distinct step over millions of rows.
gaps AS (
    SELECT pair_id, sec - lag(sec) OVER (PARTITION BY pair_id ORDER BY sec) AS x
    FROM pair_conns
),
series AS (
    SELECT 'ts' AS kind, pair_id, x FROM gaps WHERE x > 0
    UNION ALL
    SELECT 'ds' AS kind, pair_id, CAST(orig_ip_bytes AS DOUBLE) AS x FROM pair_conns WHERE orig_ip_bytes IS NOT NULL
),
-- Values per series, joined back rather than taken by count(*) OVER
-- (PARTITION BY ...): DataFusion 55 holds the whole input of a window over
-- entire partitions in memory, outside the memory pool.
series_sizes AS (
    SELECT kind, pair_id, count(*) AS n FROM series GROUP BY kind, pair_id
),
ranked AS (
    SELECT s.kind, s.pair_id, s.x, z.n,
           row_number() OVER (PARTITION BY s.kind, s.pair_id ORDER BY s.x) AS rn
    -- One row per series on the build side of the join, not one per value.
    FROM series_sizes z JOIN series s ON s.kind = z.kind AND s.pair_id = z.pair_id
),
-- Quartiles by position in the sorted values (no percentile aggregates:
-- one pass over the ranked rows): a median of m values at 1-based offset o
-- is the mean of the values at o + (m + 1) / 2 and o + (m + 2) / 2
-- (integer division), the same value when m is odd.
quartiles AS (
    SELECT kind, pair_id, n,
           avg(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN x END) AS q2,
           avg(CASE WHEN rn IN ((n / 2 + 1) / 2, (n / 2 + 2) / 2) THEN x END) AS q1,
           avg(CASE WHEN rn IN (n - n / 2 + (n / 2 + 1) / 2, n - n / 2 + (n / 2 + 2) / 2) THEN x END) AS q3
    FROM ranked GROUP BY kind, pair_id, n
),
deviations AS (
    SELECT d.kind, d.pair_id, d.n,
           row_number() OVER (PARTITION BY d.kind, d.pair_id ORDER BY d.dev) AS rn, d.dev
    FROM (
        SELECT r.kind, r.pair_id, r.n, abs(r.x - q.q2) AS dev
        FROM quartiles q JOIN ranked r ON r.kind = q.kind AND r.pair_id = q.pair_id
    ) d
),
mads AS (
    SELECT kind, pair_id, avg(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN dev END) AS mad
    FROM deviations GROUP BY kind, pair_id
),
regularity AS (
    SELECT q.kind, q.pair_id,
           round((
               1.0 - abs(CASE
                   WHEN q.q3 - q.q1 > 0 AND q.q3 - q.q1 >= p.bowley_min_iqr
                        AND q.q2 <> q.q1 AND q.q2 <> q.q3
                   THEN (q.q1 + q.q3 - 2 * q.q2) / (q.q3 - q.q1)
                   ELSE 0.0 END)
               + CASE WHEN q.q2 >= 1 THEN greatest((q.q2 - d.mad) / q.q2, 0.0)
                      WHEN q.kind = 'ts' THEN 1.0 ELSE 0.0 END
           ) / 2, 3) AS score
    FROM params p
    CROSS JOIN quartiles q
    JOIN mads d ON q.kind = d.kind AND q.pair_id = d.pair_id
    WHERE q.n >= 3
)
SELECT pair_id,
       max(CASE WHEN kind = 'ts' THEN score END) AS ts_score,
       max(CASE WHEN kind = 'ds' THEN score END) AS ds_score
FROM regularity GROUP BY pair_id
