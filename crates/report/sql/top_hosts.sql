-- report: top_hosts
-- inputs: hosts
-- grain: one row per source window, the ten with the highest recon scores
-- doc: Sources that probed the most hosts on one port or ports on one host.
SELECT src_ip, window_start, connections, dest_hosts, dest_ports, probe_share,
       horizontal_hosts, vertical_ports, recon_score
FROM hosts
ORDER BY recon_score DESC, connections DESC, src_ip, window_start
LIMIT 10
