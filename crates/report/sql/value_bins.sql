-- report: value_bins
-- inputs: features
-- grain: one row per measure, label and log1p bin (width 0.5); bin NULL counts unset values
-- doc: Histograms by label of log1p duration, bytes and packets.
SELECT 'duration' AS measure, label, CAST(floor(duration_log1p * 2) AS BIGINT) AS bin, count(*) AS connections
FROM features GROUP BY label, CAST(floor(duration_log1p * 2) AS BIGINT)
UNION ALL
SELECT 'orig_bytes', label, CAST(floor(orig_bytes_log1p * 2) AS BIGINT), count(*)
FROM features GROUP BY label, CAST(floor(orig_bytes_log1p * 2) AS BIGINT)
UNION ALL
SELECT 'resp_bytes', label, CAST(floor(resp_bytes_log1p * 2) AS BIGINT), count(*)
FROM features GROUP BY label, CAST(floor(resp_bytes_log1p * 2) AS BIGINT)
UNION ALL
SELECT 'orig_pkts', label, CAST(floor(orig_pkts_log1p * 2) AS BIGINT), count(*)
FROM features GROUP BY label, CAST(floor(orig_pkts_log1p * 2) AS BIGINT)
UNION ALL
SELECT 'resp_pkts', label, CAST(floor(resp_pkts_log1p * 2) AS BIGINT), count(*)
FROM features GROUP BY label, CAST(floor(resp_pkts_log1p * 2) AS BIGINT)
