-- stage: features
-- inputs: labeled
-- grain: one row per connection
-- doc: Model features: log1p of skewed numerics, missing-value flags, one-hot protocol / conn_state / top services.
--
-- Keys and the readable categories are carried along for scoring output;
-- the model reads only the numeric and boolean columns named in the
-- pipeline's train stage. One-hot columns are explicit so that a new
-- category in new data lands in an `_other` bucket instead of a new column.
SELECT
    uid,
    ts,
    src_ip,
    src_port,
    dest_ip,
    dest_port,
    protocol,
    service,
    conn_state,
    label,

    CAST(src_port AS DOUBLE)                         AS src_port_num,
    CAST(dest_port AS DOUBLE)                        AS dest_port_num,
    log1p(duration)                                  AS duration_log1p,
    log1p(CAST(orig_bytes AS DOUBLE))                AS orig_bytes_log1p,
    log1p(CAST(resp_bytes AS DOUBLE))                AS resp_bytes_log1p,
    log1p(CAST(orig_pkts AS DOUBLE))                 AS orig_pkts_log1p,
    log1p(CAST(resp_pkts AS DOUBLE))                 AS resp_pkts_log1p,
    log1p(CAST(orig_ip_bytes AS DOUBLE))             AS orig_ip_bytes_log1p,
    log1p(CAST(resp_ip_bytes AS DOUBLE))             AS resp_ip_bytes_log1p,
    log1p(CAST(missed_bytes AS DOUBLE))              AS missed_bytes_log1p,
    CAST(coalesce(length(history), 0) AS DOUBLE)     AS history_len,

    duration IS NULL                                 AS duration_missing,
    orig_bytes IS NULL OR resp_bytes IS NULL         AS bytes_missing,
    service IS NULL                                  AS service_missing,
    history IS NULL                                  AS history_missing,

    coalesce(protocol = 'tcp', false)                AS protocol_tcp,
    coalesce(protocol = 'udp', false)                AS protocol_udp,
    coalesce(protocol = 'icmp', false)               AS protocol_icmp,
    coalesce(protocol NOT IN ('tcp', 'udp', 'icmp'), true) AS protocol_other,

    coalesce(conn_state = 'S0', false)               AS conn_state_s0,
    coalesce(conn_state = 'S1', false)               AS conn_state_s1,
    coalesce(conn_state = 'SF', false)               AS conn_state_sf,
    coalesce(conn_state = 'REJ', false)              AS conn_state_rej,
    coalesce(conn_state = 'S2', false)               AS conn_state_s2,
    coalesce(conn_state = 'S3', false)               AS conn_state_s3,
    coalesce(conn_state = 'RSTO', false)             AS conn_state_rsto,
    coalesce(conn_state = 'RSTR', false)             AS conn_state_rstr,
    coalesce(conn_state = 'RSTOS0', false)           AS conn_state_rstos0,
    coalesce(conn_state = 'RSTRH', false)            AS conn_state_rstrh,
    coalesce(conn_state = 'SH', false)               AS conn_state_sh,
    coalesce(conn_state = 'SHR', false)              AS conn_state_shr,
    coalesce(conn_state = 'OTH', false)              AS conn_state_oth,
    coalesce(conn_state NOT IN ('S0', 'S1', 'SF', 'REJ', 'S2', 'S3', 'RSTO', 'RSTR',
                                'RSTOS0', 'RSTRH', 'SH', 'SHR', 'OTH'), true) AS conn_state_other,

    coalesce(service = 'dns', false)                 AS service_dns,
    coalesce(service = 'http', false)                AS service_http,
    coalesce(service = 'ssl', false)                 AS service_ssl,
    coalesce(service = 'ntp', false)                 AS service_ntp,
    coalesce(service = 'dhcp', false)                AS service_dhcp,
    coalesce(service = 'smb', false)                 AS service_smb,
    coalesce(service IN ('krb', 'krb_tcp'), false)   AS service_krb,
    coalesce(service = 'ldap', false)                AS service_ldap,
    coalesce(service = 'dce_rpc', false)             AS service_dce_rpc,
    coalesce(service = 'ssh', false)                 AS service_ssh,
    coalesce(service NOT IN ('dns', 'http', 'ssl', 'ntp', 'dhcp', 'smb', 'krb', 'krb_tcp',
                             'ldap', 'dce_rpc', 'ssh'), false) AS service_other
FROM labeled
