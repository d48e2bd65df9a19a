-- stage: beacons
-- inputs: clean
-- grain: one row per (src_ip, dest_ip, dest_port, protocol) pair seen at least $min_connections times in the window, or whose connections last $long_connection_seconds in all
-- doc: RITA-style beacon scores per pair: timestamp and data-size regularity, histogram, duration coverage, and long-connection / strobe flags.
--
-- Definitions (every sub-score is in [0, 1]; 1 is the most beacon-like):
-- * Connections: rows of `clean` with ts, both addresses, dest_port and
--   protocol set; identical rows (same uid, ts, pair, duration and bytes)
--   count once. Pairs with both ends in $internal_subnets (internal
--   infrastructure: DNS, Kerberos, SMB to domain controllers) or a
--   destination in $ignored_dest_subnets (multicast, broadcast) are left out.
-- * Window: [max ts - $window_seconds, max ts] of the input, or the input's
--   whole [min ts, max ts] when $window_seconds is 0; span = its length.
-- * Q(p): percentile_cont, linear interpolation at index p*(n-1) of the
--   sorted values (Hyndman-Fan type 7, numpy's default); median = Q(0.5).
-- * Bowley skew = (Q(.25) + Q(.75) - 2 Q(.5)) / (Q(.75) - Q(.25)). As in
--   RITA it counts as 0 (symmetric) when Q(.75) - Q(.25) is 0 or below
--   $bowley_min_iqr, or when Q(.5) equals Q(.25) or Q(.75): the measure is
--   unreliable there. skew score = 1 - |skew|.
-- * MAD = median of |x - median|. MAD score = max(0, (median - MAD) / median);
--   0 when the median is 0 (no typical value to be regular around).
-- * ts_score = mean of skew and MAD scores of the gaps between the pair's
--   distinct connection times (simultaneous connections add no gap, as in
--   RITA); 0 with fewer than 3 gaps.
-- * ds_score = the same on orig_ip_bytes (unset values left out); 0 with
--   fewer than 3 values.
-- * hist_score: connections counted in $hist_bins equal bins over the window
--   (the last bin includes its end); CV = population standard deviation /
--   mean of the bin counts; 1 - CV, or 0 when CV > 1.
-- * dur_score: 0 with fewer than $dur_min_bins non-empty bins, else the larger
--   of coverage = (last_seen - first_seen) / span and consistency =
--   min(1, longest run of consecutive non-empty bins / $dur_ideal_bins), a
--   run may wrap from the last bin to the first. 0 when the span is 0.
-- * score = mean of the four. Pairs below $min_connections (kept only for
--   long_connection) get 0 for every score.
-- * long_connection: summed duration >= $long_connection_seconds.
-- * strobe: connections >= $strobe_per_day * max(span, 3600) / 86400 (RITA
--   flags 86400 a day; short windows are held to at least an hour's worth).
WITH params AS (
    SELECT
        CAST($window_seconds AS DOUBLE)          AS window_seconds,
        CAST($min_connections AS BIGINT)         AS min_connections,
        CAST($hist_bins AS BIGINT)               AS bins,
        CAST($dur_min_bins AS BIGINT)            AS dur_min_bins,
        CAST($dur_ideal_bins AS DOUBLE)          AS dur_ideal_bins,
        CAST($bowley_min_iqr AS DOUBLE)          AS bowley_min_iqr,
        CAST($long_connection_seconds AS DOUBLE) AS long_connection_seconds,
        CAST($strobe_per_day AS DOUBLE)          AS strobe_per_day
),
conns AS (
    SELECT DISTINCT c.uid, c.ts, c.src_ip, c.dest_ip, c.dest_port, c.protocol,
           c.duration, c.orig_ip_bytes
    FROM clean c
    WHERE c.ts IS NOT NULL AND c.src_ip IS NOT NULL AND c.dest_ip IS NOT NULL
      AND c.dest_port IS NOT NULL AND c.protocol IS NOT NULL
      AND NOT (coalesce(ip_in_cidrs(c.src_ip, CAST($internal_subnets AS VARCHAR)), false)
               AND coalesce(ip_in_cidrs(c.dest_ip, CAST($internal_subnets AS VARCHAR)), false))
      AND NOT coalesce(ip_in_cidrs(c.dest_ip, CAST($ignored_dest_subnets AS VARCHAR)), false)
),
bounds AS (
    SELECT
        CASE WHEN p.window_seconds > 0 THEN max(c.ts) - p.window_seconds ELSE min(c.ts) END AS t_min,
        max(c.ts) AS t_max
    FROM conns c CROSS JOIN params p
    GROUP BY p.window_seconds
),
win AS (
    SELECT c.*, b.t_min, b.t_max - b.t_min AS span
    FROM conns c CROSS JOIN bounds b
    WHERE c.ts >= b.t_min
),
pairs AS (
    SELECT w.src_ip, w.dest_ip, w.dest_port, w.protocol,
           count(*)              AS connections,
           min(w.ts)             AS first_seen,
           max(w.ts)             AS last_seen,
           sum(w.duration)       AS total_duration,
           sum(w.orig_ip_bytes)  AS total_orig_ip_bytes
    FROM win w CROSS JOIN params p
    GROUP BY w.src_ip, w.dest_ip, w.dest_port, w.protocol, p.min_connections, p.long_connection_seconds
    HAVING count(*) >= p.min_connections
        OR coalesce(sum(w.duration), 0) >= p.long_connection_seconds
),
pair_conns AS (
    SELECT w.*
    FROM win w
    JOIN pairs k ON w.src_ip = k.src_ip AND w.dest_ip = k.dest_ip
                AND w.dest_port = k.dest_port AND w.protocol = k.protocol
),
gaps AS (
    SELECT src_ip, dest_ip, dest_port, protocol,
           ts - lag(ts) OVER (PARTITION BY src_ip, dest_ip, dest_port, protocol ORDER BY ts) AS x
    FROM (SELECT DISTINCT src_ip, dest_ip, dest_port, protocol, ts FROM pair_conns) t
),
sizes AS (
    SELECT src_ip, dest_ip, dest_port, protocol, CAST(orig_ip_bytes AS DOUBLE) AS x
    FROM pair_conns
),
-- One row per value of either series, tagged, so both get the same statistics.
series AS (
    SELECT 'ts' AS kind, * FROM gaps WHERE x IS NOT NULL
    UNION ALL
    SELECT 'ds' AS kind, * FROM sizes WHERE x IS NOT NULL
),
quartiles AS (
    SELECT kind, src_ip, dest_ip, dest_port, protocol,
           count(*)                                          AS n,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY x)   AS q1,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY x)    AS q2,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY x)   AS q3
    FROM series
    GROUP BY kind, src_ip, dest_ip, dest_port, protocol
),
mads AS (
    SELECT s.kind, s.src_ip, s.dest_ip, s.dest_port, s.protocol,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(s.x - q.q2)) AS mad
    FROM series s
    JOIN quartiles q ON s.kind = q.kind AND s.src_ip = q.src_ip AND s.dest_ip = q.dest_ip
                    AND s.dest_port = q.dest_port AND s.protocol = q.protocol
    GROUP BY s.kind, s.src_ip, s.dest_ip, s.dest_port, s.protocol
),
regularity AS (
    SELECT q.kind, q.src_ip, q.dest_ip, q.dest_port, q.protocol,
           CASE WHEN q.n < 3 THEN 0.0 ELSE
               (1.0 - abs(CASE
                   WHEN q.q3 - q.q1 > 0 AND q.q3 - q.q1 >= p.bowley_min_iqr
                        AND q.q2 <> q.q1 AND q.q2 <> q.q3
                   THEN (q.q1 + q.q3 - 2 * q.q2) / (q.q3 - q.q1)
                   ELSE 0.0 END)
                + CASE WHEN q.q2 > 0 THEN greatest((q.q2 - m.mad) / q.q2, 0.0) ELSE 0.0 END
               ) / 2
           END AS score
    FROM quartiles q
    JOIN mads m ON q.kind = m.kind AND q.src_ip = m.src_ip AND q.dest_ip = m.dest_ip
               AND q.dest_port = m.dest_port AND q.protocol = m.protocol
    CROSS JOIN params p
),
bins AS (
    SELECT w.src_ip, w.dest_ip, w.dest_port, w.protocol,
           CASE WHEN w.span > 0
                THEN least(CAST(floor((w.ts - w.t_min) / w.span * p.bins) AS BIGINT), p.bins - 1)
                ELSE 0 END AS bin,
           count(*) AS c
    FROM pair_conns w CROSS JOIN params p
    GROUP BY 1, 2, 3, 4, 5
),
islands AS (
    SELECT src_ip, dest_ip, dest_port, protocol, bin,
           bin - row_number() OVER (PARTITION BY src_ip, dest_ip, dest_port, protocol ORDER BY bin) AS island
    FROM bins
),
runs AS (
    SELECT src_ip, dest_ip, dest_port, protocol, count(*) AS len, min(bin) AS lo, max(bin) AS hi
    FROM islands
    GROUP BY src_ip, dest_ip, dest_port, protocol, island
),
hist AS (
    SELECT r.src_ip, r.dest_ip, r.dest_port, r.protocol,
           sum(r.len)                                                   AS active_bins,
           max(r.len)                                                   AS max_run,
           sum(CASE WHEN r.lo = 0 THEN r.len ELSE 0 END)                AS head_run,
           sum(CASE WHEN r.hi = p.bins - 1 THEN r.len ELSE 0 END)       AS tail_run
    FROM runs r CROSS JOIN params p
    GROUP BY r.src_ip, r.dest_ip, r.dest_port, r.protocol
),
bin_moments AS (
    SELECT src_ip, dest_ip, dest_port, protocol,
           CAST(sum(c) AS DOUBLE) AS n, CAST(sum(c * c) AS DOUBLE) AS sum_sq
    FROM bins
    GROUP BY src_ip, dest_ip, dest_port, protocol
),
subscores AS (
    SELECT k.*,
           b.span,
           coalesce(ts.score, 0.0) AS ts_score,
           coalesce(ds.score, 0.0) AS ds_score,
           -- CV over all bins, empty ones included: mean = n / bins.
           greatest(1.0 - sqrt(greatest(bm.sum_sq / p.bins - (bm.n / p.bins) * (bm.n / p.bins), 0.0))
                          / (bm.n / p.bins), 0.0) AS hist_score,
           CASE WHEN h.active_bins < p.dur_min_bins OR b.span <= 0 THEN 0.0
                ELSE greatest(
                    (k.last_seen - k.first_seen) / b.span,
                    least(CAST(CASE
                        WHEN h.active_bins = p.bins THEN p.bins
                        WHEN h.head_run > 0 AND h.tail_run > 0 THEN greatest(h.max_run, h.head_run + h.tail_run)
                        ELSE h.max_run END AS DOUBLE) / p.dur_ideal_bins, 1.0))
           END AS dur_score,
           k.connections >= p.min_connections AS scorable,
           coalesce(k.total_duration, 0) >= p.long_connection_seconds AS long_connection,
           CAST(k.connections AS DOUBLE) >= p.strobe_per_day * greatest(b.span, 3600.0) / 86400.0 AS strobe
    FROM pairs k
    CROSS JOIN (SELECT t_max - t_min AS span FROM bounds) b
    CROSS JOIN params p
    JOIN hist h ON k.src_ip = h.src_ip AND k.dest_ip = h.dest_ip
               AND k.dest_port = h.dest_port AND k.protocol = h.protocol
    JOIN bin_moments bm ON k.src_ip = bm.src_ip AND k.dest_ip = bm.dest_ip
                       AND k.dest_port = bm.dest_port AND k.protocol = bm.protocol
    LEFT JOIN regularity ts ON ts.kind = 'ts' AND k.src_ip = ts.src_ip AND k.dest_ip = ts.dest_ip
                           AND k.dest_port = ts.dest_port AND k.protocol = ts.protocol
    LEFT JOIN regularity ds ON ds.kind = 'ds' AND k.src_ip = ds.src_ip AND k.dest_ip = ds.dest_ip
                           AND k.dest_port = ds.dest_port AND k.protocol = ds.protocol
)
SELECT
    src_ip, dest_ip, dest_port, protocol,
    connections, first_seen, last_seen, total_duration, total_orig_ip_bytes,
    CASE WHEN scorable THEN (ts_score + ds_score + hist_score + dur_score) / 4 ELSE 0.0 END AS score,
    CASE WHEN scorable THEN ts_score ELSE 0.0 END   AS ts_score,
    CASE WHEN scorable THEN ds_score ELSE 0.0 END   AS ds_score,
    CASE WHEN scorable THEN hist_score ELSE 0.0 END AS hist_score,
    CASE WHEN scorable THEN dur_score ELSE 0.0 END  AS dur_score,
    long_connection,
    strobe
FROM subscores
