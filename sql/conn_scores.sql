-- stage: conn_scores
-- inputs: clean, beacons, hosts
-- grain: one row per distinct connection (identical rows once), keyed like the model's `scored` table: uid, ts, src_ip, src_port, dest_ip, dest_port
-- doc: Every connection with its pair's beacon score and its source host's recon score for the window it falls in.
--
-- A connection belongs to the `beacons` row of its addresses (and port and
-- protocol, when beacons are per port) whose window holds it, i.e. whose
-- first_seen .. last_seen spans its ts; the host window is computed exactly
-- as in `hosts`. beacon_score is NULL for pairs `beacons` does not list
-- (seen too rarely in the window, internal, or to an ignored destination).
WITH conns AS (
    SELECT DISTINCT uid, ts, src_ip, src_port, dest_ip, dest_port, protocol,
           service, conn_state, label_text,
           floor(ts / CAST($host_window_seconds AS DOUBLE)) * CAST($host_window_seconds AS DOUBLE) AS window_start
    FROM clean
)
SELECT
    c.uid, c.ts, c.src_ip, c.src_port, c.dest_ip, c.dest_port, c.protocol,
    c.service, c.conn_state, c.label_text,
    b.score            AS beacon_score,
    b.threat_score     AS beacon_threat_score,
    b.window_start     AS beacon_window_start,
    b.connections      AS pair_connections,
    b.long_connection,
    b.strobe,
    c.window_start,
    h.recon_score,
    h.horizontal_scan,
    h.vertical_scan
FROM conns c
LEFT JOIN beacons b
    ON c.src_ip = b.src_ip AND c.dest_ip = b.dest_ip
   AND (b.dest_port IS NULL OR c.dest_port = b.dest_port)
   AND (b.protocol IS NULL OR c.protocol = b.protocol)
   AND c.ts BETWEEN b.first_seen AND b.last_seen
LEFT JOIN hosts h
    ON c.src_ip = h.src_ip AND c.window_start = h.window_start
