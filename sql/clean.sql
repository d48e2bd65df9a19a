-- stage: clean
-- inputs: raw
-- grain: one row per input connection
-- doc: Typed, normalised connections; non-finite numbers become unset; $dropna=true reproduces the notebook's dropna.
--
-- Unset duration/bytes are kept by default: in Zeek they mean "not
-- measured", and most such rows are single-packet probes, i.e. scans.
-- Counters are never negative in Zeek; a negative or non-finite value is
-- treated as unset rather than trusted.
SELECT
    CAST(ts AS DOUBLE)                                            AS ts,
    uid,
    src_ip,
    CAST(src_port AS BIGINT)                                      AS src_port,
    dest_ip,
    CAST(dest_port AS BIGINT)                                     AS dest_port,
    lower(trim(protocol))                                         AS protocol,
    -- A multi-protocol service ("smb,gssapi,ntlm") is named by its first entry.
    nullif(lower(trim(split_part(service, ',', 1))), '')          AS service,
    service                                                       AS service_full,
    CASE WHEN isnan(duration) OR duration IN ('inf'::double, '-inf'::double) OR duration < 0
         THEN NULL ELSE duration END                              AS duration,
    CASE WHEN orig_bytes < 0 THEN NULL ELSE orig_bytes END        AS orig_bytes,
    CASE WHEN resp_bytes < 0 THEN NULL ELSE resp_bytes END        AS resp_bytes,
    upper(trim(conn_state))                                       AS conn_state,
    local_orig,
    local_resp,
    missed_bytes,
    history,
    orig_pkts,
    orig_ip_bytes,
    resp_pkts,
    resp_ip_bytes,
    label_text,
    label_detail
FROM raw
WHERE NOT $dropna
   OR (duration IS NOT NULL AND orig_bytes IS NOT NULL AND resp_bytes IS NOT NULL
       AND service IS NOT NULL AND history IS NOT NULL)
