//! Location resolution: files, directories, globs, URLs, and what is skipped.

use std::path::Path;

use zeekml_formats::{read_zeek, resolve_location};

use crate::{fail, real, tsv_header, CONN_FIELDS, ROW};

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A tree of one-row logs plus files a listing must skip.
fn log_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = format!("{}{ROW}\n", tsv_header(CONN_FIELDS));
    let root = dir.path();
    write(&root.join("2024-01-01/conn.00.log"), &log);
    write(&root.join("2024-01-01/conn.01.log"), &log);
    write(&root.join("2024-01-02/conn.00.log"), &log);
    write(&root.join("2024-01-10/conn.00.log"), &log);
    write(&root.join("2024-01-01/dns.00.log"), "#path\tdns\n");
    write(&root.join("_SUCCESS"), "");
    write(&root.join(".conn.00.log.crc"), "crc");
    write(&root.join("_temporary/conn.99.log"), "partial");
    write(&root.join(".hidden/conn.log"), "hidden");
    dir
}

fn names(resolved: &zeekml_formats::Resolved) -> Vec<String> {
    resolved
        .files
        .iter()
        .map(|m| m.location.to_string())
        .collect()
}

#[tokio::test]
async fn directory_is_listed_recursively_skipping_hidden_and_markers() {
    let dir = log_tree();
    let root = dir.path().to_str().expect("utf8");
    let resolved = resolve_location(root).await.expect("resolve dir");
    assert_eq!(resolved.store_url.as_str(), "file:///");
    let found = names(&resolved);
    let rel: Vec<&str> = found
        .iter()
        .map(|n| {
            n.rsplit_once(
                dir.path()
                    .file_name()
                    .and_then(|f| f.to_str())
                    .expect("name"),
            )
            .expect("under tempdir")
            .1
        })
        .collect();
    assert_eq!(
        rel,
        vec![
            "/2024-01-01/conn.00.log",
            "/2024-01-01/conn.01.log",
            "/2024-01-01/dns.00.log",
            "/2024-01-02/conn.00.log",
            "/2024-01-10/conn.00.log",
        ]
    );
    assert!(resolved.files.iter().all(|m| m.size > 0));
}

#[tokio::test]
async fn glob_selects_files_and_reads_in_path_order() {
    let dir = log_tree();
    let pattern = format!("{}/2024-01-0*/conn.*.log", dir.path().display());
    let resolved = resolve_location(&pattern).await.expect("glob");
    // 2024-01-10 is outside `2024-01-0*`; dns.00.log is outside `conn.*`.
    assert_eq!(resolved.files.len(), 3);
    let r = read_zeek(&pattern, &fail()).await.expect("read glob");
    assert_eq!((r.files, r.rows), (3, 3));
    let first = resolved.display_path(&resolved.files[0].location);
    assert_eq!(
        first,
        format!("{}/2024-01-01/conn.00.log", dir.path().display())
    );

    let narrow = format!("{}/2024-01-0[12]/conn.00.log", dir.path().display());
    assert_eq!(
        resolve_location(&narrow).await.expect("class").files.len(),
        2
    );
}

#[tokio::test]
async fn file_url_and_relative_paths() {
    let path = real("stratosphere-unlabeled-tsv/006-zeek-scenario-ssh.conn.log");
    let canonical = std::fs::canonicalize(&path).expect("canonical");
    let url = format!("file://{}", canonical.display());
    let r = read_zeek(&url, &fail()).await.expect("file url");
    assert_eq!(r.rows, 18);

    // Tests run in the crate directory, so this relative path reaches realdata.
    let relative =
        "../../../shared/realdata/stratosphere-unlabeled-tsv/006-zeek-scenario-ssh.conn.log";
    let resolved = resolve_location(relative).await.expect("relative");
    assert_eq!(resolved.files.len(), 1);
    assert_eq!(
        resolved.display_path(&resolved.files[0].location),
        canonical.display().to_string()
    );
}

#[tokio::test]
async fn missing_paths_and_empty_matches_are_errors_naming_the_location() {
    let err = resolve_location("/no/such/dir/conn.log")
        .await
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "/no/such/dir/conn.log: no such file or directory"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("_SUCCESS"), "").expect("write");
    let root = dir.path().display().to_string();
    let err = resolve_location(&root).await.expect_err("only markers");
    assert_eq!(err.to_string(), format!("{root}: matches no files"));

    let pattern = format!("{root}/*.log.gz");
    let err = resolve_location(&pattern).await.expect_err("no glob match");
    assert_eq!(err.to_string(), format!("{pattern}: matches no files"));

    // An object store URL goes through object_store (an empty in-memory store here).
    let err = resolve_location("memory:///logs/")
        .await
        .expect_err("empty store");
    assert_eq!(err.to_string(), "memory:///logs/: matches no files");
}

#[tokio::test]
async fn a_directory_with_a_non_conn_log_fails_naming_it() {
    let dir = log_tree();
    let err = read_zeek(dir.path().to_str().expect("utf8"), &fail())
        .await
        .expect_err("dns log in dir");
    let text = err.to_string();
    assert!(
        text.ends_with("/2024-01-01/dns.00.log:1: bad header: #path is \"dns\", not a conn log"),
        "{text}"
    );
}
