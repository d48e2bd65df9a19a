-- stage: hosts
-- inputs: clean
-- grain: one row per (src_ip, window_start): each source's connections in windows of $host_window_seconds
-- doc: Host-level reconnaissance features per source and time window, with horizontal/vertical scan flags and a rule score.
--
-- Definitions:
-- * window_start = floor(ts / $host_window_seconds) * $host_window_seconds
--   (windows aligned to ts 0, i.e. to the hour of the epoch by default).
-- * Connections: rows of `clean` with ts and src_ip set; identical rows (same
--   uid, ts, endpoints, state, duration and bytes) count once.
-- * Probe: a connection in state S0 (no reply), REJ (rejected), SHR
--   (responder only) or RSTO (originator reset) that carried no responder
--   payload (resp_bytes 0 or unset): a browser resetting a finished download
--   also ends in RSTO, but with payload.
-- * horizontal_hosts: the most distinct destination hosts one destination
--   port was probed on; vertical_ports: the most distinct ports one
--   destination host was probed on.
-- * horizontal_scan: horizontal_hosts >= $scan_min_hosts;
--   vertical_scan: vertical_ports >= $scan_min_ports.
-- * recon_score = max(min(1, horizontal_hosts / $scan_min_hosts),
--   min(1, vertical_ports / $scan_min_ports)): 1 at a threshold, rising
--   linearly from 0 below it.
-- * Medians are percentile_cont(0.5) (the mean of the two middle values for
--   an even count) over the set values; NULL when none is set.
WITH params AS (
    SELECT
        CAST($host_window_seconds AS DOUBLE) AS window_seconds,
        CAST($scan_min_hosts AS DOUBLE)      AS scan_min_hosts,
        CAST($scan_min_ports AS DOUBLE)      AS scan_min_ports
),
conns AS (
    SELECT DISTINCT
        c.uid, c.ts, c.src_ip, c.dest_ip, c.dest_port, c.protocol, c.conn_state,
        c.duration, c.orig_bytes, c.resp_bytes,
        floor(c.ts / p.window_seconds) * p.window_seconds AS window_start,
        c.conn_state IN ('S0', 'REJ', 'SHR', 'RSTO') AND coalesce(c.resp_bytes, 0) = 0 AS probe
    FROM clean c CROSS JOIN params p
    WHERE c.ts IS NOT NULL AND c.src_ip IS NOT NULL
),
per_window AS (
    SELECT
        src_ip, window_start,
        count(*)                                                        AS connections,
        count(DISTINCT dest_ip)                                         AS dest_hosts,
        count(DISTINCT dest_port)                                       AS dest_ports,
        avg(CASE WHEN conn_state = 'S0' THEN 1.0 ELSE 0.0 END)          AS s0_share,
        avg(CASE WHEN conn_state = 'REJ' THEN 1.0 ELSE 0.0 END)         AS rej_share,
        avg(CASE WHEN conn_state = 'SHR' THEN 1.0 ELSE 0.0 END)         AS shr_share,
        avg(CASE WHEN conn_state = 'RSTO' THEN 1.0 ELSE 0.0 END)        AS rsto_share,
        avg(CASE WHEN probe THEN 1.0 ELSE 0.0 END)                      AS probe_share,
        avg(CASE WHEN duration IS NULL THEN 1.0 ELSE 0.0 END)           AS unset_duration_share,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(orig_bytes AS DOUBLE)) AS median_orig_bytes,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(resp_bytes AS DOUBLE)) AS median_resp_bytes
    FROM conns
    GROUP BY src_ip, window_start
),
horizontal AS (
    SELECT src_ip, window_start, max(hosts) AS horizontal_hosts
    FROM (
        SELECT src_ip, window_start, dest_port, count(DISTINCT dest_ip) AS hosts
        FROM conns WHERE probe AND dest_port IS NOT NULL
        GROUP BY src_ip, window_start, dest_port
    ) t
    GROUP BY src_ip, window_start
),
vertical AS (
    SELECT src_ip, window_start, max(ports) AS vertical_ports
    FROM (
        SELECT src_ip, window_start, dest_ip, count(DISTINCT dest_port) AS ports
        FROM conns WHERE probe AND dest_ip IS NOT NULL
        GROUP BY src_ip, window_start, dest_ip
    ) t
    GROUP BY src_ip, window_start
),
counted AS (
    SELECT w.*,
           coalesce(h.horizontal_hosts, 0) AS horizontal_hosts,
           coalesce(v.vertical_ports, 0)   AS vertical_ports
    FROM per_window w
    LEFT JOIN horizontal h ON w.src_ip = h.src_ip AND w.window_start = h.window_start
    LEFT JOIN vertical v ON w.src_ip = v.src_ip AND w.window_start = v.window_start
)
SELECT
    c.src_ip, c.window_start, c.window_start + p.window_seconds AS window_end,
    c.connections, c.dest_hosts, c.dest_ports,
    c.s0_share, c.rej_share, c.shr_share, c.rsto_share, c.probe_share,
    c.unset_duration_share, c.median_orig_bytes, c.median_resp_bytes,
    c.horizontal_hosts, c.vertical_ports,
    c.horizontal_hosts >= p.scan_min_hosts AS horizontal_scan,
    c.vertical_ports >= p.scan_min_ports   AS vertical_scan,
    greatest(least(c.horizontal_hosts / p.scan_min_hosts, 1.0),
             least(c.vertical_ports / p.scan_min_ports, 1.0)) AS recon_score
FROM counted c CROSS JOIN params p
