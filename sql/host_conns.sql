-- stage: host_conns
-- inputs: clean
-- grain: one row per distinct connection of `clean` with ts and src_ip set
-- doc: The connections `hosts` counts: identical rows once, each with its host window (window_start) and whether it was a probe.
--
-- Definitions are in hosts.sql. A stage of its own so that the rows are
-- de-duplicated once, not once for each count `hosts` takes from them.
WITH params AS (
    SELECT CAST($host_window_seconds AS DOUBLE) AS window_seconds
)
SELECT DISTINCT
    c.uid, c.ts, c.src_ip, c.dest_ip, c.dest_port, c.protocol, c.conn_state,
    c.duration, c.orig_bytes, c.resp_bytes,
    floor(c.ts / p.window_seconds) * p.window_seconds AS window_start,
    c.conn_state IN ('S0', 'REJ', 'SHR', 'RSTO') AND coalesce(c.resp_bytes, 0) = 0 AS probe
FROM params p CROSS JOIN clean c
WHERE c.ts IS NOT NULL AND c.src_ip IS NOT NULL
