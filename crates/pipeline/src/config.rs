//! Pipeline files (`pipelines/*.toml`): parameters and the ordered stages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeekml_model::TrainSpec;

use crate::error::{Error, Result};

/// A parsed pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Pipeline name, recorded in the run manifest.
    pub name: String,
    /// One line saying what the pipeline is for.
    #[serde(default)]
    pub description: String,
    /// Named parameters: `${name}` in stage settings and `$name` in SQL.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// The stages, in the order they run.
    pub stages: Vec<StageSpec>,
    /// Other data the deployed model is evaluated on after training.
    #[serde(default)]
    pub evaluations: Vec<EvaluationSpec>,
    /// The SQL stages' memory limit (`"2GB"`, `"512MiB"`; units are
    /// powers of 1024; `${param}` is substituted): their operators hold at
    /// most three quarters of it, and sorts, aggregates and window
    /// functions spill to disk beyond that; unset: no limit.
    #[serde(default)]
    pub memory_limit: Option<String>,
}

/// One `[[evaluations]]` entry: an input that the deployed model of a
/// `lightgbm` stage is scored on (its feature stages replayed, as
/// `zeekml score` does), giving a `metrics` row with `split` = `name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// Name in the `split` column of `metrics` and `evaluated`.
    pub name: String,
    /// Files, directory, glob or URL; `${param}` is substituted. An empty
    /// value skips the evaluation, so a parameter can switch it on.
    pub input: String,
    /// Input layout.
    pub format: InputFormat,
    /// Canonical column name = name in the input, as for an ingest stage.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// The `lightgbm` stage whose deployed model is evaluated; may be left
    /// out when the pipeline has one.
    #[serde(default)]
    pub stage: Option<String>,
    /// How rows without a label are counted.
    #[serde(default)]
    pub unlabelled: zeekml_model::Unlabelled,
    /// Count identical rows once, as the `dedup` split's test side does
    /// (UWF repeats each attack flow 256 times).
    #[serde(default = "yes")]
    pub dedup: bool,
    /// What a missing local input does: stop the run, or skip with a warning.
    #[serde(default)]
    pub if_missing: IfMissing,
    /// Sources left out of the figures (comma-separated CIDR blocks,
    /// `${param}` substituted): a network's own authorised scanners, which
    /// its SOC lists rather than alerts on. Counted in `excluded_rows`.
    #[serde(default)]
    pub exclude_sources: String,
}

/// What an evaluation whose input is not there does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfMissing {
    /// Stop the run naming the path.
    #[default]
    Fail,
    /// Leave the evaluation out, with a warning in the log.
    Skip,
}

/// One stage of a pipeline; `kind` selects the runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageSpec {
    /// Read input files into a Parquet table.
    Ingest(IngestSpec),
    /// Run one `.sql` file and store its result as a table.
    Sql(SqlSpec),
    /// Train and evaluate a LightGBM model.
    Lightgbm(TrainSpec),
    /// Apply a saved model to a table.
    Score(ScoreSpec),
}

impl StageSpec {
    /// The stage name, which is also the name of the table it writes.
    pub fn name(&self) -> &str {
        match self {
            StageSpec::Ingest(s) => &s.name,
            StageSpec::Sql(s) => &s.name,
            StageSpec::Lightgbm(s) => &s.name,
            StageSpec::Score(s) => &s.name,
        }
    }

    /// The partition the stage writes, if any (a `lightgbm` stage writes
    /// whole tables).
    pub fn partition(&self) -> Option<&PartitionSpec> {
        match self {
            StageSpec::Ingest(s) => s.partition.as_ref(),
            StageSpec::Sql(s) => s.partition.as_ref(),
            StageSpec::Lightgbm(_) => None,
            StageSpec::Score(s) => s.partition.as_ref(),
        }
    }

    /// The runner kind as written in the pipeline file.
    pub fn kind(&self) -> &'static str {
        match self {
            StageSpec::Ingest(_) => "ingest",
            StageSpec::Sql(_) => "sql",
            StageSpec::Lightgbm(_) => "lightgbm",
            StageSpec::Score(_) => "score",
        }
    }
}

/// Input file layouts the ingest stage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Comma-separated files with a header row (the UWF CSV exports).
    Csv,
    /// Parquet files (the UWF Parquet releases).
    Parquet,
    /// Native Zeek conn logs: TSV with a `#fields` header or JSON lines, optionally gzipped.
    Zeek,
}

/// What to do with a row that cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadRows {
    /// Stop the run with the file and line.
    #[default]
    Fail,
    /// Set the row aside in the rejects table with the reason, and go on.
    Reject,
}

/// Settings of an `ingest` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    /// Stage and table name.
    pub name: String,
    /// A file, directory, glob or object store URL; `${param}` is substituted.
    pub input: String,
    /// Input layout.
    pub format: InputFormat,
    /// Canonical column name = name in the input, for inputs whose names differ.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Policy for unreadable rows.
    #[serde(default)]
    pub on_bad_rows: OnBadRows,
    /// Table that receives rejected rows.
    #[serde(default = "default_rejects")]
    pub rejects_table: String,
    /// Write the table under `<table>/<column>=<value>/`, replacing only that
    /// partition; `${param}` is substituted in the value.
    #[serde(default)]
    pub partition: Option<PartitionSpec>,
}

/// A single Hive-style partition a stage writes into.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Partition column name, e.g. `date`.
    pub column: String,
    /// Partition value, e.g. `${date}`.
    pub value: String,
    /// An empty value writes the whole table instead of a partition, so one
    /// pipeline serves both one-off runs and a scheduled `--set date=...`.
    #[serde(default)]
    pub optional: bool,
}

fn default_rejects() -> String {
    "rejects".to_string()
}

/// Settings of a `sql` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    /// Stage and table name; must match the `-- stage:` header of the file.
    pub name: String,
    /// The `.sql` file, relative to the pipeline file.
    pub sql: PathBuf,
    /// Optional partition the result is written into.
    #[serde(default)]
    pub partition: Option<PartitionSpec>,
    /// `false` makes the stage a view: nothing is written, and the stages
    /// that read it compute it on the fly from its inputs.
    #[serde(default = "yes")]
    pub materialize: bool,
}

fn yes() -> bool {
    true
}

/// Settings of a `score` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// Stage and table name.
    pub name: String,
    /// Table holding the canonical connections to score.
    pub input: String,
    /// Model directory (`${param}` substituted; relative paths are taken
    /// from the warehouse root, e.g. `models/uwf_recon`).
    pub model: String,
    /// Decision threshold; the model card's when absent.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Reasons per row, as `zeekml score --explain K`: the `explain`
    /// largest TreeSHAP contributions in `reasons`, with
    /// `contribution_rest` and `base_value`; 0 (the default) writes no
    /// reason columns.
    #[serde(default)]
    pub explain: usize,
    /// Optional partition the result is written into.
    #[serde(default)]
    pub partition: Option<PartitionSpec>,
}

/// A pipeline file together with where it was read from and its parameters
/// after `--set` overrides.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub file: PipelineFile,
}

impl Pipeline {
    /// Reads and validates a pipeline file, then applies `--set` overrides.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadPipeline {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, overrides)
    }

    /// Parses pipeline text; `path` is used for messages and relative paths.
    pub fn parse(path: &Path, text: &str, overrides: &[(String, String)]) -> Result<Self> {
        let mut file: PipelineFile =
            toml::from_str(text).map_err(|source| Error::ParsePipeline {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        let invalid = |message: String| Error::InvalidPipeline {
            path: path.to_path_buf(),
            message,
        };
        for (key, value) in overrides {
            let Some(slot) = file.params.get_mut(key) else {
                let known: Vec<&str> = file.params.keys().map(String::as_str).collect();
                return Err(invalid(format!(
                    "--set {key}: no such parameter (parameters: {})",
                    known.join(", ")
                )));
            };
            *slot = coerce(slot, value).map_err(|m| invalid(format!("--set {key}: {m}")))?;
        }
        for (key, value) in file.params.iter_mut() {
            if let Some(list) = value.as_str().and_then(|v| v.strip_prefix('@')) {
                let cidrs = read_cidr_file(Path::new(list))
                    .map_err(|m| invalid(format!("parameter '{key}': {m}")))?;
                *value = toml::Value::String(cidrs);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for stage in &file.stages {
            if !seen.insert(stage.name().to_string()) {
                return Err(invalid(format!(
                    "stage '{}' is defined twice",
                    stage.name()
                )));
            }
            if !valid_table_name(stage.name()) {
                return Err(invalid(format!(
                    "stage name '{}' must be lowercase letters, digits and '_'",
                    stage.name()
                )));
            }
        }
        if file.stages.is_empty() {
            return Err(invalid("no stages".to_string()));
        }
        check_evaluations(&file).map_err(invalid)?;
        Ok(Pipeline {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The `memory_limit` setting in bytes, if set.
    pub fn memory_limit(&self) -> Result<Option<usize>> {
        let Some(text) = &self.file.memory_limit else {
            return Ok(None);
        };
        let text = self.substitute(text)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_bytes(&text)
            .map(Some)
            .map_err(|m| self.invalid(format!("memory_limit '{text}': {m}")))
    }

    /// Directory that relative paths in the pipeline file are resolved from.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The SQL stage `table` when it is a view (`materialize = false`):
    /// computed on the fly by the stages that read it, never written.
    pub fn view(&self, table: &str) -> Option<&SqlSpec> {
        self.file.stages.iter().find_map(|s| match s {
            StageSpec::Sql(s) if s.name == table && !s.materialize => Some(s),
            _ => None,
        })
    }

    /// Replaces every `${name}` in `text` with the parameter's value.
    pub fn substitute(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.invalid(format!("unclosed '${{' in '{text}'")));
            };
            let key = &after[..end];
            let value = self.file.params.get(key).ok_or_else(|| {
                self.invalid(format!("'{text}' refers to undefined parameter '{key}'"))
            })?;
            out.push_str(&param_text(value));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// An error about this pipeline file.
    pub fn invalid(&self, message: String) -> Error {
        Error::InvalidPipeline {
            path: self.path.clone(),
            message,
        }
    }

    /// Index of the stage called `name`.
    pub fn stage_index(&self, name: &str) -> Result<usize> {
        self.file
            .stages
            .iter()
            .position(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.file.stages.iter().map(StageSpec::name).collect();
                self.invalid(format!("no stage '{name}' (stages: {})", names.join(", ")))
            })
    }
}

/// A byte count such as `2GB`, `1.5GiB`, `512M` or `1048576` (units are
/// powers of 1024, with or without `B`/`iB`).
pub fn parse_bytes(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a number with an optional unit, e.g. 2GB".to_string())?;
    let power = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        other => return Err(format!("unknown unit '{other}' (use K, M, G or T)")),
    };
    let bytes = value * 1024f64.powi(power);
    if !(1.0..=usize::MAX as f64).contains(&bytes) {
        return Err("must be at least one byte".into());
    }
    Ok(bytes as usize)
}

/// A list file of address blocks as one comma-separated parameter value:
/// one IPv4/IPv6 CIDR block or address per line, `#` starting a comment.
/// Lists stay files so that editing one and rerunning the stages that read
/// it rescores stored connections without reading the logs again.
pub fn read_cidr_file(path: &Path) -> std::result::Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read list file {}: {e}", path.display()))?;
    let mut blocks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        if crate::net::Cidr::parse(entry).is_none() {
            return Err(format!(
                "{}:{}: '{entry}' is not an IPv4 or IPv6 CIDR block or address",
                path.display(),
                i + 1
            ));
        }
        blocks.push(entry.to_string());
    }
    Ok(blocks.join(","))
}

/// Evaluation names are unique, differ from split names and name a
/// `lightgbm` stage (or the pipeline has exactly one).
fn check_evaluations(file: &PipelineFile) -> std::result::Result<(), String> {
    let trainers: Vec<&TrainSpec> = file
        .stages
        .iter()
        .filter_map(|s| match s {
            StageSpec::Lightgbm(t) => Some(t),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for e in &file.evaluations {
        let at = format!("evaluation '{}'", e.name);
        if !valid_table_name(&e.name) {
            return Err(format!(
                "{at}: the name must be lowercase letters, digits and '_'"
            ));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(format!("{at} is defined twice"));
        }
        if let Some(t) = trainers
            .iter()
            .find(|t| t.splits.iter().any(|s| s.name() == e.name))
        {
            return Err(format!(
                "{at}: the name is a split of stage '{}'; metrics rows would mix",
                t.name
            ));
        }
        match (&e.stage, trainers.as_slice()) {
            (Some(stage), _) if !trainers.iter().any(|t| &t.name == stage) => {
                return Err(format!(
                    "{at}: stage '{stage}' is not a lightgbm stage of this pipeline"
                ))
            }
            (None, []) => return Err(format!("{at}: the pipeline has no lightgbm stage")),
            (None, [_, _, ..]) => {
                return Err(format!(
                    "{at}: the pipeline has several lightgbm stages; say which with `stage`"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Table names double as directory names and SQL identifiers.
pub fn valid_table_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Text form of a parameter, as substituted into stage settings.
pub fn param_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an override with the type of the parameter it replaces.
fn coerce(current: &toml::Value, text: &str) -> std::result::Result<toml::Value, String> {
    Ok(match current {
        toml::Value::Boolean(_) => toml::Value::Boolean(
            text.parse()
                .map_err(|_| format!("expected true or false, got '{text}'"))?,
        ),
        toml::Value::Integer(_) => toml::Value::Integer(
            text.parse()
                .map_err(|_| format!("expected an integer, got '{text}'"))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            text.parse()
                .map_err(|_| format!("expected a number, got '{text}'"))?,
        ),
        _ => toml::Value::String(text.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
name = "t"
[params]
input = "data/uwf"
drop_unset = false
[[stages]]
name = "raw"
kind = "ingest"
format = "csv"
input = "${input}/x"
[[stages]]
name = "clean"
kind = "sql"
sql = "../sql/clean.sql"
"#;

    #[test]
    fn overrides_are_typed_and_substituted() {
        let p = Pipeline::parse(
            Path::new("p.toml"),
            SAMPLE,
            &[
                ("input".into(), "/tmp/in".into()),
                ("drop_unset".into(), "true".into()),
            ],
        )
        .expect("valid pipeline");
        assert_eq!(p.substitute("${input}/x").expect("subst"), "/tmp/in/x");
        assert_eq!(p.file.params["drop_unset"], toml::Value::Boolean(true));
        assert_eq!(p.file.stages[0].kind(), "ingest");
    }

    #[test]
    fn unknown_override_and_bad_type_are_errors() {
        let err = Pipeline::parse(Path::new("p.toml"), SAMPLE, &[("nope".into(), "1".into())])
            .expect_err("unknown key");
        assert!(
            err.to_string().contains("--set nope: no such parameter"),
            "{err}"
        );
        let err = Pipeline::parse(
            Path::new("p.toml"),
            SAMPLE,
            &[("drop_unset".into(), "maybe".into())],
        )
        .expect_err("bad bool");
        assert!(err.to_string().contains("expected true or false"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = SAMPLE.replace("format = \"csv\"", "format = \"csv\"\nfromat = 1");
        let err = Pipeline::parse(Path::new("p.toml"), &text, &[]).expect_err("typo");
        assert!(err.to_string().contains("fromat"), "{err}");
    }

    #[test]
    fn byte_counts_parse_with_binary_units() {
        assert_eq!(parse_bytes("2GB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("512 M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(
            parse_bytes("2 PB"),
            Err("unknown unit 'PB' (use K, M, G or T)".into())
        );
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn list_files_become_cidr_parameters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("never.txt");
        std::fs::write(
            &list,
            "# CDNs we trust\n198.51.100.0/24\n\n2001:db8::/32  # docs\n203.0.113.7\n",
        )
        .expect("write");
        let text =
            format!("{SAMPLE}\n").replace("drop_unset = false", "drop_unset = false\nnever = \"\"");
        let p = Pipeline::parse(
            Path::new("p.toml"),
            &text,
            &[("never".into(), format!("@{}", list.display()))],
        )
        .expect("valid");
        assert_eq!(
            p.file.params["never"],
            toml::Value::String("198.51.100.0/24,2001:db8::/32,203.0.113.7".into())
        );
        std::fs::write(&list, "10.0.0.0/8\n10.0.0.0/33\n").expect("write");
        let err = Pipeline::parse(
            Path::new("p.toml"),
            &text,
            &[("never".into(), format!("@{}", list.display()))],
        )
        .expect_err("bad block");
        assert!(
            err.to_string().contains("parameter 'never': ")
                && err
                    .to_string()
                    .contains("never.txt:2: '10.0.0.0/33' is not"),
            "{err}"
        );
    }

    #[test]
    fn evaluations_are_checked() {
        let base = r#"
name = "t"
[[stages]]
name = "train"
kind = "lightgbm"
input = "features"
model_name = "m"
"#;
        let parse = |extra: &str| {
            Pipeline::parse(Path::new("p.toml"), &format!("{base}{extra}"), &[])
                .map_err(|e| e.to_string())
        };
        let p =
            parse("[[evaluations]]\nname = \"benign_2025\"\ninput = \"x\"\nformat = \"parquet\"\n")
                .expect("valid");
        let e = &p.file.evaluations[0];
        assert!(e.dedup && e.stage.is_none() && e.if_missing == IfMissing::Fail);
        assert_eq!(e.unlabelled, zeekml_model::Unlabelled::Benign);
        let err = parse("[[evaluations]]\nname = \"dedup\"\ninput = \"x\"\nformat = \"csv\"\n")
            .expect_err("split name");
        assert!(
            err.contains("evaluation 'dedup': the name is a split of stage 'train'"),
            "{err}"
        );
        let err = parse(
            "[[evaluations]]\nname = \"e\"\ninput = \"x\"\nformat = \"csv\"\nstage = \"nope\"\n",
        )
        .expect_err("stage");
        assert!(
            err.contains("stage 'nope' is not a lightgbm stage"),
            "{err}"
        );
        let twice = "[[evaluations]]\nname = \"e\"\ninput = \"x\"\nformat = \"csv\"\n";
        let err = parse(&format!("{twice}{twice}")).expect_err("twice");
        assert!(err.contains("evaluation 'e' is defined twice"), "{err}");
    }

    #[test]
    fn undefined_parameter_is_named() {
        let p = Pipeline::parse(Path::new("p.toml"), SAMPLE, &[]).expect("valid");
        let err = p.substitute("${date}").expect_err("undefined");
        assert!(
            err.to_string().contains("undefined parameter 'date'"),
            "{err}"
        );
    }
}
