//! The runs, beacons, hosts and alerts sections.

use std::collections::BTreeMap;

use super::{missing, window_label, Body, Outcome};
use crate::error::Result;
use crate::html::{self, float, thousands};
use crate::plot;
use crate::query;
use crate::Source;

/// Texts of a column, unset as empty.
fn texts(v: Vec<Option<String>>) -> Vec<String> {
    v.into_iter().map(Option::unwrap_or_default).collect()
}

fn counts(v: &[Option<i64>]) -> Vec<String> {
    v.iter()
        .map(|v| v.map(thousands).unwrap_or_default())
        .collect()
}

fn decimals(v: &[Option<f64>], d: usize) -> Vec<String> {
    v.iter().map(|v| float(*v, d)).collect()
}

/// Rows of a table from its columns.
fn transpose(columns: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let n = columns.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect()
}

pub(crate) async fn runs(source: &Source) -> Result<Outcome> {
    if !source.has("runs") {
        return Ok(missing(
            &["runs"],
            "Every `zeekml run` adds its rows to it.",
        ));
    }
    let rows = query::run(&source.ctx, &query::LATEST_RUN, vec![]).await?;
    if rows.is_empty() {
        return Ok(Outcome::Missing("The `runs` table is empty.".to_string()));
    }
    let run_id = texts(rows.strings("run_id")?);
    let pipeline = texts(rows.strings("pipeline")?);
    let started = texts(rows.strings("started_at")?);
    let stage = texts(rows.strings("stage")?);
    let seconds = rows.f64s("seconds")?;
    let peak = rows.f64s("peak_rss_mib")?;
    let mut body = Body::default();
    body.source(&format!(
        "From `runs`: the latest run, {} of pipeline {}, started {}.",
        run_id[0], pipeline[0], started[0]
    ));
    let value = |v: &[Option<f64>]| v.iter().map(|v| v.unwrap_or(0.0)).collect::<Vec<_>>();
    body.chart(
        plot::bars(&plot::Bars {
            title: "Wall seconds per stage",
            value_desc: "seconds",
            categories: &stage,
            groups: &[("seconds".to_string(), value(&seconds))],
            horizontal: true,
            log: false,
        })?,
        "`runs`.seconds of each stage.",
    );
    body.chart(
        plot::bars(&plot::Bars {
            title: "Peak resident memory per stage",
            value_desc: "MiB",
            categories: &stage,
            groups: &[("MiB".to_string(), value(&peak))],
            horizontal: true,
            log: false,
        })?,
        "`runs`.peak_rss_mib: the process's peak during the stage.",
    );
    let table = transpose(vec![
        stage,
        texts(rows.strings("kind")?),
        texts(rows.strings("outputs")?),
        counts(&rows.i64s("rows_in")?),
        counts(&rows.i64s("rows_out")?),
        counts(&rows.i64s("rows_rejected")?),
        decimals(&seconds, 2),
        decimals(&peak, 0),
        texts(rows.strings("status")?),
    ]);
    body.html(&html::table(
        &[
            "stage", "kind", "outputs", "rows_in", "rows_out", "rejected", "seconds", "peak MiB",
            "status",
        ],
        &table,
        &["rows_in", "rows_out", "rejected", "seconds", "peak MiB"],
    ));
    Ok(Outcome::Drawn(body))
}

/// `src → dest, window` names of pair-days.
fn pair_names(
    src: &[Option<String>],
    dest: &[Option<String>],
    window: &[Option<f64>],
) -> Vec<String> {
    (0..src.len())
        .map(|i| {
            format!(
                "{} → {}, {}",
                src[i].as_deref().unwrap_or(""),
                dest[i].as_deref().unwrap_or(""),
                window[i].map_or(String::new(), window_label)
            )
        })
        .collect()
}

pub(crate) async fn beacons(source: &Source) -> Result<Outcome> {
    if !source.has("beacons") {
        return Ok(missing(
            &["beacons"],
            "The beacon stages write it (`zeekml run pipelines/beacon.toml`).",
        ));
    }
    let rows = query::run(&source.ctx, &query::TOP_BEACONS, vec![]).await?;
    if rows.is_empty() {
        return Ok(Outcome::Missing(
            "The `beacons` table is empty: no pair had enough connections to score.".to_string(),
        ));
    }
    let src = rows.strings("src_ip")?;
    let dest = rows.strings("dest_ip")?;
    let window = rows.f64s("window_start")?;
    let names = pair_names(&src, &dest, &window);
    let score_columns = [
        ("ts_score", "ts"),
        ("ds_score", "ds"),
        ("hist_score", "hist"),
        ("dur_score", "dur"),
        ("score", "score"),
        ("threat_score", "threat"),
    ];
    let mut scores = Vec::new();
    for (column, _) in score_columns {
        scores.push(rows.f64s(column)?);
    }
    let mut body = Body::default();
    body.source("From `beacons` (the ten pair-days with the highest threat_score) and `beacon_conns` (their connections).");
    let values: Vec<Vec<Option<f64>>> = (0..rows.len())
        .map(|i| scores.iter().map(|s| s[i]).collect())
        .collect();
    let text: Vec<Vec<String>> = values
        .iter()
        .map(|r| r.iter().map(|v| float(*v, 3)).collect())
        .collect();
    let cols: Vec<String> = score_columns.iter().map(|c| c.1.to_string()).collect();
    body.chart(
        plot::heatmap(&plot::Heatmap {
            title: "Beacon sub-scores of the top pairs",
            rows: &names,
            cols: &cols,
            values: &values,
            text: &text,
            range: (0.0, 1.0),
            diverging: false,
            col_label_rotate: false,
        })?,
        "ts, ds, hist, dur: RITA's timestamp, data-size, histogram and duration scores; score: their weighted sum; threat: with the threat modifiers.",
    );
    if source.has("beacon_conns") {
        bins(source, &mut body, &names).await?;
    } else {
        body.note("No `beacon_conns` table: no connection histograms.");
    }
    let connections = counts(&rows.i64s("connections")?);
    let mut columns = vec![names, connections];
    columns.extend(scores.iter().map(|s| decimals(s, 3)));
    let mut headers = vec!["pair, window", "connections"];
    headers.extend(score_columns.iter().map(|c| c.0));
    body.html(&html::table(&headers, &transpose(columns), &headers[1..]));
    Ok(Outcome::Drawn(body))
}

/// Connection histograms of the top pairs, in the order of `top`.
async fn bins(source: &Source, body: &mut Body, top: &[String]) -> Result<()> {
    let rows = query::run(&source.ctx, &query::BEACON_BINS, vec![]).await?;
    let src = rows.strings("src_ip")?;
    let dest = rows.strings("dest_ip")?;
    let window = rows.f64s("window_start")?;
    let first = rows.f64s("first_ts")?;
    let last = rows.f64s("last_ts")?;
    let bin = rows.i64s("bin")?;
    let n = rows.i64s("connections")?;
    let names = pair_names(&src, &dest, &window);
    // pair -> (span seconds, per-bin counts)
    let mut pairs: BTreeMap<String, (f64, [f64; 24])> = BTreeMap::new();
    for i in 0..rows.len() {
        let (Some(b), Some(n)) = (bin[i], n[i]) else {
            continue;
        };
        let span = last[i].unwrap_or(0.0) - first[i].unwrap_or(0.0);
        let entry = pairs.entry(names[i].clone()).or_insert((span, [0.0; 24]));
        if let Some(slot) = usize::try_from(b).ok().and_then(|b| entry.1.get_mut(b)) {
            *slot += n as f64;
        }
    }
    let categories: Vec<String> = (0..24).map(|h| h.to_string()).collect();
    for name in top {
        let Some((span, counts)) = pairs.remove(name) else {
            continue;
        };
        let width = span / 24.0;
        let unit = if width >= 3000.0 {
            format!("{:.1} h", width / 3600.0)
        } else {
            format!("{:.1} min", width / 60.0)
        };
        body.chart(
            plot::bars(&plot::Bars {
                title: name,
                value_desc: "connections",
                categories: &categories,
                groups: &[("connections".to_string(), counts.to_vec())],
                horizontal: false,
                log: false,
            })?,
            &format!("Connections of the pair in `beacon_conns` per bin: 24 equal bins from the window's first to its last connection (of any pair), {unit} each (an hour each for a full day)."),
        );
    }
    Ok(())
}

pub(crate) async fn hosts(source: &Source) -> Result<Outcome> {
    if !source.has("hosts") {
        return Ok(missing(
            &["hosts"],
            "The `hosts` stage writes it (`zeekml run pipelines/beacon.toml`).",
        ));
    }
    let rows = query::run(&source.ctx, &query::TOP_HOSTS, vec![]).await?;
    if rows.is_empty() {
        return Ok(Outcome::Missing("The `hosts` table is empty.".to_string()));
    }
    let src = rows.strings("src_ip")?;
    let window = rows.f64s("window_start")?;
    let names: Vec<String> = (0..rows.len())
        .map(|i| {
            format!(
                "{}, {}",
                src[i].as_deref().unwrap_or(""),
                window[i].map_or(String::new(), window_label)
            )
        })
        .collect();
    let horizontal = rows.i64s("horizontal_hosts")?;
    let vertical = rows.i64s("vertical_ports")?;
    let recon = rows.f64s("recon_score")?;
    let as_f64 = |v: &[Option<i64>]| v.iter().map(|v| v.unwrap_or(0) as f64).collect::<Vec<_>>();
    let mut body = Body::default();
    body.source("From `hosts`: the ten source windows with the highest recon_score.");
    body.chart(
        plot::bars(&plot::Bars {
            title: "Hosts per port and ports per host",
            value_desc: "count",
            categories: &names,
            groups: &[
                ("horizontal_hosts".to_string(), as_f64(&horizontal)),
                ("vertical_ports".to_string(), as_f64(&vertical)),
            ],
            horizontal: true,
            log: false,
        })?,
        "horizontal_hosts: the most hosts one port was probed on; vertical_ports: the most ports probed on one host.",
    );
    let table = transpose(vec![
        names,
        counts(&rows.i64s("connections")?),
        counts(&rows.i64s("dest_hosts")?),
        counts(&rows.i64s("dest_ports")?),
        decimals(&rows.f64s("probe_share")?, 3),
        counts(&horizontal),
        counts(&vertical),
        decimals(&recon, 4),
    ]);
    let headers = [
        "source, window",
        "connections",
        "dest_hosts",
        "dest_ports",
        "probe_share",
        "horizontal_hosts",
        "vertical_ports",
        "recon_score",
    ];
    body.html(&html::table(&headers, &table, &headers[1..]));
    Ok(Outcome::Drawn(body))
}

pub(crate) async fn alerts(source: &Source) -> Result<Outcome> {
    if !source.has("alerts") {
        return Ok(missing(
            &["alerts"],
            "Scheduled scoring writes it (`zeekml run pipelines/zeek_score.toml`).",
        ));
    }
    let days = query::run(&source.ctx, &query::ALERTS_BY_DAY, vec![]).await?;
    let date = texts(days.strings("date")?);
    let total = days.i64s("connections")?;
    let flagged = days.i64s("flagged")?;
    let mut body = Body::default();
    body.source("From `alerts`: every scored connection of each day partition, flagged at the model's threshold.");
    body.chart(
        plot::bars(&plot::Bars {
            title: "Flagged connections per day",
            value_desc: "flagged connections",
            categories: &date,
            groups: &[(
                "flagged".to_string(),
                flagged.iter().map(|v| v.unwrap_or(0) as f64).collect(),
            )],
            horizontal: false,
            log: false,
        })?,
        "`alerts` rows with flag set, per `date` partition.",
    );
    let sources = query::run(&source.ctx, &query::ALERT_SOURCES, vec![]).await?;
    let src = texts(sources.strings("src_ip")?);
    let per_source = sources.i64s("flagged")?;
    if sources.is_empty() {
        body.note("No connection in `alerts` is flagged: no top sources.");
    } else {
        body.chart(
            plot::bars(&plot::Bars {
                title: "Sources of the most flagged connections",
                value_desc: "flagged connections",
                categories: &src,
                groups: &[(
                    "flagged".to_string(),
                    per_source.iter().map(|v| v.unwrap_or(0) as f64).collect(),
                )],
                horizontal: true,
                log: false,
            })?,
            "The ten sources with the most flagged connections in `alerts`, all days.",
        );
    }
    body.html(&html::table(
        &["date", "connections", "flagged"],
        &transpose(vec![date, counts(&total), counts(&flagged)]),
        &["connections", "flagged"],
    ));
    if !sources.is_empty() {
        body.html(&html::table(
            &["source", "flagged", "destinations", "max score"],
            &transpose(vec![
                src,
                counts(&per_source),
                counts(&sources.i64s("destinations")?),
                decimals(&sources.f64s("max_score")?, 4),
            ]),
            &["flagged", "destinations", "max score"],
        ));
    }
    Ok(Outcome::Drawn(body))
}
