//! Thresholds on an alert budget and evaluations on data the model was not
//! trained on: another traffic profile, the real benign UWF 2025 file and
//! an unlabelled real Zeek log.

use crate::{generate_profile, realdata, scalar, sql, uwf_pipeline, zeekml};

#[test]
fn alert_budget_threshold_and_evaluations_on_other_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (campus, enterprise, wh) = (
        tmp.path().join("campus"),
        tmp.path().join("enterprise"),
        tmp.path().join("wh"),
    );
    // 200,000 rows: about 12,000 benign validation rows, enough to measure
    // the default 1e-4 budget.
    generate_profile(&campus, 200_000, 11, "campus");
    generate_profile(&enterprise, 40_000, 12, "enterprise");
    let ssh = realdata("stratosphere-unlabeled-tsv/006-zeek-scenario-ssh.conn.log");
    let pipeline = uwf_pipeline(
        tmp.path(),
        None,
        &format!(
            "[[evaluations]]\nname = \"ssh_unlabelled\"\ninput = \"{}\"\nformat = \"zeek\"\n",
            ssh.display()
        ),
    );
    zeekml()
        .args(["run"])
        .arg(&pipeline)
        .arg("--set")
        .arg(format!("input={}", campus.display()))
        .arg("--set")
        .arg(format!("other_eval={}", enterprise.display()))
        .arg("--warehouse")
        .arg(&wh)
        .assert()
        .success();

    // The deployed split's threshold keeps the validation side's alert budget.
    let dedup = sql(
        &wh,
        "SELECT threshold_rule, threshold_target, valid_fpr <= 0.0001 AS within, \
         abs(alerts_per_million_benign - 1e6 * fp / (fp + tn)) < 1e-6 AS apm \
         FROM metrics WHERE split = 'dedup'",
    );
    assert_eq!(
        dedup,
        "threshold_rule,threshold_target,within,apm\nmax_fpr_on_valid,0.0001,true,true\n"
    );
    // Its validation side holds no flow twice and shares none with train or test.
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM (SELECT uid, ts FROM scored WHERE split = 'dedup' AND side = 'valid' \
             GROUP BY uid, ts HAVING count(*) > 1)"
        ),
        "0"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM (SELECT uid FROM scored WHERE split = 'dedup' \
             GROUP BY uid HAVING count(DISTINCT replace(CAST(side AS VARCHAR), '_dup', '')) > 1)"
        ),
        "0"
    );
    assert!(
        scalar(
            &wh,
            "SELECT count(*) FROM scored WHERE split = 'dedup' AND side = 'valid_dup'"
        )
        .parse::<u64>()
        .unwrap()
            > 0
    );

    // The other profile: both classes, every recon flow once.
    let other = sql(
        &wh,
        "SELECT side, rows, positives, roc_auc IS NOT NULL AS auc, precision IS NOT NULL AS p, \
         tp + fp + tn + fn = rows AS counts FROM metrics WHERE split = 'other_traffic'",
    );
    let flows = scalar(
        &wh,
        "SELECT count(DISTINCT uid) FROM evaluated WHERE split = 'other_traffic' AND label = 1",
    );
    let distinct = scalar(
        &wh,
        "SELECT count(*) FROM (SELECT DISTINCT * FROM evaluated WHERE split = 'other_traffic')",
    );
    assert_eq!(
        other,
        format!("side,rows,positives,auc,p,counts\nall,{distinct},{flows},true,true,true\n")
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM evaluated WHERE split = 'other_traffic'"
        ),
        "40000"
    );

    // The real benign UWF 2025 file: false alarms only.
    let benign = sql(
        &wh,
        "SELECT rows, positives, roc_auc IS NULL AS no_auc, recall IS NULL AS no_recall, \
         fpr = fp / CAST(rows AS DOUBLE) AS fpr_ok, tp FROM metrics WHERE split = 'uwf2025_benign'",
    );
    assert_eq!(
        benign,
        "rows,positives,no_auc,no_recall,fpr_ok,tp\n49893,0,true,true,true,0\n"
    );
    // An unlabelled log counts as benign and gives its false-positive rate.
    let ssh_row = sql(
        &wh,
        "SELECT rows = unlabelled_rows AS all_unlabelled, positives, roc_auc IS NULL AS no_auc, \
         fpr IS NOT NULL AS has_fpr FROM metrics WHERE split = 'ssh_unlabelled'",
    );
    assert_eq!(
        ssh_row,
        "all_unlabelled,positives,no_auc,has_fpr\ntrue,0,true,true\n"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT count(*) FROM evaluated WHERE split = 'ssh_unlabelled'"
        ),
        scalar(
            &wh,
            "SELECT rows FROM metrics WHERE split = 'ssh_unlabelled'"
        )
    );

    // The card records the rule and the evaluations.
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(wh.join("models/uwf_recon/model_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["threshold_rule"], "max_fpr_on_valid");
    assert_eq!(card["threshold_target"], 0.0001);
    let names: Vec<&str> = card["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["split"].as_str())
        .collect();
    assert_eq!(names, ["uwf2025_benign", "other_traffic", "ssh_unlabelled"]);

    // A missing evaluation input stops the stage, naming it; the tables of
    // the earlier run stay.
    let out = zeekml()
        .args(["run"])
        .arg(&pipeline)
        .args([
            "--only",
            "train",
            "--set",
            "other_eval=/nonexistent/zeekml/parts",
        ])
        .arg("--warehouse")
        .arg(&wh)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("evaluation 'other_traffic': /nonexistent/zeekml/parts"),
        "{err}"
    );
    assert_eq!(scalar(&wh, "SELECT count(*) FROM metrics"), "5");
}
