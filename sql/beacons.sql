-- stage: beacons
-- inputs: beacon_scope, beacon_dests, beacon_regularity, beacon_histograms, beacon_evidence
-- grain: one row per (src_ip, dest_ip) pair and window (per (src_ip, dest_ip, dest_port, protocol) with $group_by_port) with at least $min_timestamps distinct timestamps in the window, whose connections last $long_connection_seconds in all, or with an end in $always_report
-- doc: RITA v5 beacon scores per pair and day (timestamp, data size, histogram, duration), threat modifiers (prevalence, first seen, uncommon port, long connection), strobes and a sample of the evidence's uids.
--
-- Definitions (RITA v5, analysis/beacons.go, with its defaults as the
-- pipeline's; every sub-score is in [0, 1], 1 the most beacon-like, and
-- rounded to 3 decimals as RITA does):
-- * Connections: rows of `clean` with ts, both addresses, dest_port and
--   protocol set, identical rows once (`beacon_conns`), of the windows
--   being scored (`beacon_scope`: the day $date, or every stored window when
--   $date is empty). Pairs with both ends in $internal_subnets or a
--   destination in $ignored_dest_subnets are left out.
--   Timestamps are whole seconds (floor of ts), as RITA stores them.
-- * Window: ts in [window_start, window_start + $window_seconds), windows
--   aligned to ts 0 (UTC days for 86400); $window_seconds = 0 makes the whole
--   input one window starting at its first connection. Each window's
--   histogram spans its first to its last connection (of any pair).
-- * Pair: (src_ip, dest_ip), with the ports and protocols seen listed; with
--   $group_by_port the pair is (src_ip, dest_ip, dest_port, protocol).
--   Scored when it has at least $min_timestamps distinct timestamps (RITA: 4,
--   i.e. 3 non-zero intervals).
-- * Quartiles are RITA's (Tukey's hinges): Q2 the median, Q1 the median of
--   the lower floor(n/2) values, Q3 of the upper floor(n/2) values; a median
--   of an even count is the mean of the middle two.
-- * Bowley skew = (Q1 + Q3 - 2 Q2) / (Q3 - Q1), counted as 0 when Q3 - Q1 is
--   below $bowley_min_iqr or Q2 equals Q1 or Q3. skew score = 1 - |skew|.
-- * MAD = median of |x - Q2|; MAD score = max(0, (Q2 - MAD) / Q2) when
--   Q2 >= 1, else 1 for gaps and 0 for sizes (RITA's defaults).
-- * ts_score = (skew score + MAD score) / 2 over the non-zero gaps between
--   consecutive timestamps; ds_score the same over orig_ip_bytes of every
--   connection (unset ones left out; 0 with fewer than 3 values).
-- * hist_score = max(CV score, bimodal fit) over $hist_bins equal bins of the
--   window's span (the last bin includes its end). CV score = 1 - population
--   sd / mean of the bin counts (empty bins included), 0 when CV > 1.
--   Bimodal fit: bars (non-empty bins) grouped by height into buckets of
--   ceil($hist_mode_sensitivity x tallest bar); the two fullest buckets'
--   bars / max(bars - $hist_bimodal_outlier_removal, 1), when there are at
--   least $hist_bimodal_min_bins bars, else 0; at most 1.
-- * dur_score: with at least $dur_min_bins bars, the larger of coverage =
--   ceil3((last - first) / window span) and consistency = ceil3(longest run
--   of consecutive bars, wrapping from the last bin to the first /
--   $dur_ideal_bins), each at most 1; else 0.
-- * score = $ts_weight ts + $ds_weight ds + $hist_weight hist + $dur_weight dur.
-- * Modifiers, each its own column: prevalence = internal sources of the
--   window that contacted dest_ip / internal sources of the window;
--   +$prevalence_modifier when <= $prevalence_low, - when >= $prevalence_high
--   (RITA: 0.15, 2%, 50%). first seen: dest_first_seen = the destination's
--   first connection in `beacon_dests` (this window and earlier stored
--   windows of the last $history_days days), dest_age_days = (last_seen -
--   dest_first_seen) / 1 day; +$first_seen_modifier when <=
--   $first_seen_new_days, - when >= $first_seen_old_days (RITA: 0.15, 7, 30).
--   uncommon_port: a tcp/udp connection that Zeek
--   gave no service on a port outside $standard_ports, +$uncommon_port_modifier.
--   long_connection: summed duration >= $long_connection_seconds,
--   +$long_connection_modifier. threat_score = score + the four modifiers, in [0, 1].
-- * strobe: connections >= $strobe_per_day x max(window span, 1 h) / 1 day.
-- * Lists: destinations in $never_score are never scored; pairs with a
--   source or destination in $always_report are always listed (even when
--   internal, ignored, never-scored or too rare to score), with
--   always_report set. Both are CIDR lists; `@FILE` in the pipeline reads
--   one from a file.
-- * uids: the first $uid_sample uids of the pair's connections by ts, sorted.
WITH params AS (
    SELECT
        CAST($min_timestamps AS BIGINT)            AS min_timestamps,
        CAST($hist_bins AS BIGINT)                 AS bins,
        CAST($hist_bimodal_outlier_removal AS BIGINT) AS outlier_removal,
        CAST($hist_bimodal_min_bins AS BIGINT)     AS bimodal_min_bins,
        CAST($dur_min_bins AS BIGINT)              AS dur_min_bins,
        CAST($dur_ideal_bins AS DOUBLE)            AS dur_ideal_bins,
        CAST($ts_weight AS DOUBLE)                 AS ts_weight,
        CAST($ds_weight AS DOUBLE)                 AS ds_weight,
        CAST($hist_weight AS DOUBLE)               AS hist_weight,
        CAST($dur_weight AS DOUBLE)                AS dur_weight,
        CAST($long_connection_seconds AS DOUBLE)   AS long_connection_seconds,
        CAST($strobe_per_day AS DOUBLE)            AS strobe_per_day,
        CAST($prevalence_low AS DOUBLE)            AS prevalence_low,
        CAST($prevalence_high AS DOUBLE)           AS prevalence_high,
        CAST($prevalence_modifier AS DOUBLE)       AS prevalence_modifier,
        CAST($uncommon_port_modifier AS DOUBLE)    AS uncommon_port_modifier,
        CAST($long_connection_modifier AS DOUBLE)  AS long_connection_modifier,
        CAST($history_days AS DOUBLE) * 86400.0    AS history_seconds,
        CAST($first_seen_new_days AS DOUBLE)       AS first_seen_new_days,
        CAST($first_seen_old_days AS DOUBLE)       AS first_seen_old_days,
        CAST($first_seen_modifier AS DOUBLE)       AS first_seen_modifier,
        string_to_array(CAST($standard_ports AS VARCHAR), ',') AS standard_ports
),
conns AS (
    SELECT window_start, sec FROM beacon_scope WHERE keep
),
bounds AS (
    SELECT window_start, min(sec) AS t_min, max(sec) AS t_max
    FROM conns GROUP BY window_start
),
-- Prevalence: internal sources of each window, and those that contacted each destination.
window_sources AS (
    SELECT window_start, count(DISTINCT src_ip) AS sources
    FROM beacon_scope WHERE src_internal GROUP BY window_start
),
pair_conns AS (
    SELECT ts, sec, src_ip, dest_ip, dest_port, protocol, service, duration,
           orig_ip_bytes, window_start, listed, key_port, key_protocol, pair_id
    FROM beacon_scope WHERE eligible
),
pairs AS (
    SELECT c.pair_id, c.src_ip, c.dest_ip, c.key_port, c.key_protocol, c.window_start,
           count(*)                        AS connections,
           count(DISTINCT c.sec)           AS timestamps,
           min(c.ts)                       AS first_seen,
           max(c.ts)                       AS last_seen,
           min(c.sec)                      AS first_sec,
           max(c.sec)                      AS last_sec,
           -- Summed in whole microseconds (Zeek's precision): a float sum's
           -- last digits depend on the order parallel scans deliver rows.
           sum(CAST(round(c.duration * 1e6) AS BIGINT)) / 1e6 AS total_duration,
           sum(c.orig_ip_bytes)            AS total_orig_ip_bytes,
           array_sort(array_agg(DISTINCT c.dest_port)) AS ports,
           array_sort(array_agg(DISTINCT c.protocol))  AS protocols,
           bool_or(c.service IS NULL AND c.protocol IN ('tcp', 'udp')
                   AND NOT array_has((SELECT standard_ports FROM params), CAST(c.dest_port AS VARCHAR))) AS uncommon_port,
           bool_or(c.listed) AS always_report
    FROM pair_conns c
    GROUP BY c.pair_id, c.src_ip, c.dest_ip, c.key_port, c.key_protocol, c.window_start
),
-- First seen: the destination's earliest connection in this window and the
-- stored windows of the history before it.
first_seen AS (
    SELECT d.window_start, d.dest_ip, min(h.first_ts) AS dest_first_seen
    FROM beacon_dests d
    JOIN beacon_dests h ON d.dest_ip = h.dest_ip
    CROSS JOIN params p
    WHERE (CAST($date AS VARCHAR) = ''
           OR d.window_start = to_unixtime(CAST(nullif(CAST($date AS VARCHAR), '') AS DATE)))
      AND h.window_start <= d.window_start AND h.window_start > d.window_start - p.history_seconds
    GROUP BY d.window_start, d.dest_ip
),
subscores AS (
    SELECT k.*,
           b.t_max - b.t_min AS span,
           coalesce(rg.ts_score, 0.0) AS ts_score,
           coalesce(rg.ds_score, 0.0) AS ds_score,
           ev.uids,
           CASE WHEN b.t_max <= b.t_min THEN 0.0
                WHEN sqrt(greatest(t.sum_sq / p.bins - (t.n / p.bins) * (t.n / p.bins), 0.0)) / (t.n / p.bins) > 1 THEN 0.0
                ELSE round(1.0 - sqrt(greatest(t.sum_sq / p.bins - (t.n / p.bins) * (t.n / p.bins), 0.0)) / (t.n / p.bins), 3)
           END AS hist_cv_score,
           CASE WHEN b.t_max > b.t_min AND t.bars >= p.bimodal_min_bins
                THEN least(round(CAST(t.top_two AS DOUBLE) / greatest(t.bars - p.outlier_removal, 1), 3), 1.0)
                ELSE 0.0 END AS hist_bimodal_score,
           CASE WHEN t.bars < p.dur_min_bins OR b.t_max <= b.t_min OR k.last_sec <= k.first_sec THEN 0.0
                ELSE greatest(
                    least(ceil((k.last_sec - k.first_sec) / (b.t_max - b.t_min) * 1000) / 1000, 1.0),
                    least(ceil(CAST(t.run AS DOUBLE) / p.dur_ideal_bins * 1000) / 1000, 1.0))
           END AS dur_score,
           k.timestamps >= p.min_timestamps AS scorable,
           coalesce(k.total_duration, 0) >= p.long_connection_seconds AS long_connection,
           CAST(k.connections AS DOUBLE) >= p.strobe_per_day * greatest(b.t_max - b.t_min, 3600.0) / 86400.0 AS strobe,
           CAST(coalesce(ds_.internal_sources, 0) AS DOUBLE) / nullif(ws.sources, 0) AS prevalence,
           fs.dest_first_seen,
           (k.last_seen - fs.dest_first_seen) / 86400.0 AS dest_age_days
    FROM pairs k
    JOIN bounds b ON k.window_start = b.window_start
    CROSS JOIN params p
    JOIN beacon_histograms t ON k.pair_id = t.pair_id
    LEFT JOIN beacon_regularity rg ON k.pair_id = rg.pair_id
    LEFT JOIN beacon_evidence ev ON k.pair_id = ev.pair_id
    LEFT JOIN window_sources ws ON k.window_start = ws.window_start
    LEFT JOIN beacon_dests ds_ ON k.window_start = ds_.window_start AND k.dest_ip = ds_.dest_ip
    LEFT JOIN first_seen fs ON k.window_start = fs.window_start AND k.dest_ip = fs.dest_ip
),
scored AS (
    SELECT s.*,
           CASE WHEN s.scorable THEN greatest(s.hist_cv_score, s.hist_bimodal_score) ELSE 0.0 END AS hist_score,
           CASE WHEN s.scorable
                THEN round(p.ts_weight * s.ts_score + p.ds_weight * s.ds_score
                           + p.hist_weight * greatest(s.hist_cv_score, s.hist_bimodal_score)
                           + p.dur_weight * s.dur_score, 3)
                ELSE 0.0 END AS beacon_score,
           CASE WHEN s.prevalence IS NULL THEN 0.0
                WHEN s.prevalence <= p.prevalence_low THEN p.prevalence_modifier
                WHEN s.prevalence >= p.prevalence_high THEN -p.prevalence_modifier
                ELSE 0.0 END AS prevalence_modifier,
           CASE WHEN s.dest_age_days IS NULL THEN 0.0
                WHEN s.dest_age_days <= p.first_seen_new_days THEN p.first_seen_modifier
                WHEN s.dest_age_days >= p.first_seen_old_days THEN -p.first_seen_modifier
                ELSE 0.0 END AS first_seen_modifier,
           CASE WHEN s.uncommon_port THEN p.uncommon_port_modifier ELSE 0.0 END AS uncommon_port_modifier,
           CASE WHEN s.long_connection THEN p.long_connection_modifier ELSE 0.0 END AS long_connection_modifier
    -- The one-row side first: DataFusion builds a cross join's left side in
    -- memory and emits one batch per left row when the left side is large.
    FROM params p CROSS JOIN subscores s
)
SELECT
    src_ip, dest_ip, key_port AS dest_port, key_protocol AS protocol, window_start,
    ports, protocols,
    connections, timestamps, first_seen, last_seen, total_duration, total_orig_ip_bytes,
    beacon_score AS score,
    CASE WHEN scorable THEN ts_score ELSE 0.0 END      AS ts_score,
    CASE WHEN scorable THEN ds_score ELSE 0.0 END      AS ds_score,
    hist_score,
    CASE WHEN scorable THEN hist_cv_score ELSE 0.0 END      AS hist_cv_score,
    CASE WHEN scorable THEN hist_bimodal_score ELSE 0.0 END AS hist_bimodal_score,
    CASE WHEN scorable THEN dur_score ELSE 0.0 END     AS dur_score,
    prevalence, prevalence_modifier,
    dest_first_seen, round(dest_age_days, 3) AS dest_age_days, first_seen_modifier,
    uncommon_port, uncommon_port_modifier,
    long_connection, long_connection_modifier,
    strobe,
    always_report,
    least(greatest(round(beacon_score + prevalence_modifier + first_seen_modifier + uncommon_port_modifier
                         + long_connection_modifier, 3), 0.0), 1.0) AS threat_score,
    uids
FROM scored
