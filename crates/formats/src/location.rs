//! Turns what a user typed (a file, a directory, a glob, a `file://` or an
//! object store URL) into an object store and the sorted list of files it
//! names.
//!
//! Hidden entries (`.crc`, `.DS_Store`) and Spark/Hadoop markers
//! (`_SUCCESS`, `_temporary/`) are skipped when a directory or prefix is
//! listed, because they are never data.

use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};

/// Env var prefixes whose values configure object stores (credentials,
/// region, endpoint); passed to [`object_store::parse_url_opts`].
const STORE_ENV_PREFIXES: &[&str] = &["AWS_", "GOOGLE_", "AZURE_"];

/// A resolved location: the store to read from and the files it names.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The store holding the files.
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://authority/` of the store, for `RuntimeEnv::register_object_store`.
    pub store_url: Url,
    /// The files, sorted by path.
    pub files: Vec<ObjectMeta>,
}

impl Resolved {
    /// How a file is named in messages and in the `source_file` column:
    /// the absolute path for local files, the full URL otherwise.
    pub fn display_path(&self, path: &Path) -> String {
        if self.store_url.scheme() == "file" {
            format!("/{path}")
        } else {
            format!("{}{path}", self.store_url)
        }
    }
}

/// Resolves a location into a store and the sorted files it names.
///
/// Accepts a local file or directory (listed recursively), a glob
/// (`logs/2024-01-0*/conn.*.log.gz`), a `file:///abs/path` URL, or an object
/// store URL (`s3://bucket/prefix/`, optionally with a glob in its path).
/// Object store settings come from `AWS_*`, `GOOGLE_*` and `AZURE_*`
/// environment variables.
pub async fn resolve_location(location: &str) -> Result<Resolved> {
    match location_url(location) {
        Some(url) if url.scheme() == "file" => {
            let path = url.to_file_path().map_err(|()| Error::InvalidLocation {
                location: location.to_string(),
                message: "not an absolute local path".to_string(),
            })?;
            resolve_local(location, path).await
        }
        Some(url) => resolve_remote(location, url).await,
        None => resolve_local(location, PathBuf::from(location)).await,
    }
}

/// A location is a URL only when it spells `scheme://`; anything else
/// (including `C:\...` style names) is a local path.
fn location_url(location: &str) -> Option<Url> {
    let (scheme, _) = location.split_once("://")?;
    if scheme.len() < 2
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    Url::parse(location).ok()
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Hidden files and Spark/Hadoop markers: never data.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

fn glob_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

fn invalid(location: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidLocation {
        location: location.to_string(),
        message: message.to_string(),
    }
}

async fn resolve_local(location: &str, path: PathBuf) -> Result<Resolved> {
    let absolute = absolute(location, &path)?;
    let owned_location = location.to_string();
    let paths =
        tokio::task::spawn_blocking(move || local_files(&owned_location, &absolute)).await??;
    if paths.is_empty() {
        return Err(Error::NoFiles {
            location: location.to_string(),
        });
    }
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let store_url = Url::parse("file:///").map_err(|e| invalid(location, e))?;
    let mut files = futures::stream::iter(paths)
        .map(|p| {
            let store = Arc::clone(&store);
            async move {
                let object_path = Path::from_absolute_path(&p).map_err(|e| invalid(location, e))?;
                store
                    .head(&object_path)
                    .await
                    .map_err(|source| Error::ObjectStore {
                        location: p.display().to_string(),
                        source,
                    })
            }
        })
        .buffered(16)
        .try_collect::<Vec<_>>()
        .await?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(Resolved {
        store,
        store_url,
        files,
    })
}

/// Makes a path absolute against the working directory and removes `.` and
/// `..` lexically, as object store paths cannot hold them.
fn absolute(location: &str, path: &FsPath) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            path: location.to_string(),
            source,
        })?;
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Local files named by an absolute path or glob, unsorted.
fn local_files(location: &str, path: &FsPath) -> Result<Vec<PathBuf>> {
    let text = path
        .to_str()
        .ok_or_else(|| invalid(location, "path is not valid UTF-8"))?;
    let mut out = Vec::new();
    if has_glob(text) {
        // A pattern whose last part asks for hidden names literally gets them.
        let wants_hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_hidden);
        let matches = glob::glob_with(text, glob_options()).map_err(|e| invalid(location, e))?;
        for entry in matches {
            let found = entry.map_err(|e| Error::Io {
                path: e.path().display().to_string(),
                source: e.into(),
            })?;
            let metadata = std::fs::metadata(&found).map_err(|source| Error::Io {
                path: found.display().to_string(),
                source,
            })?;
            if metadata.is_dir() {
                walk(&found, &mut out)?;
            } else if wants_hidden
                || !found
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_hidden)
            {
                out.push(found);
            }
        }
        return Ok(out);
    }
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                location: location.to_string(),
            })
        }
        Err(source) => {
            return Err(Error::Io {
                path: location.to_string(),
                source,
            })
        }
    };
    if metadata.is_dir() {
        walk(path, &mut out)?;
    } else {
        out.push(path.to_path_buf());
    }
    Ok(out)
}

/// Recursively collects the visible files under `dir`.
fn walk(dir: &FsPath, out: &mut Vec<PathBuf>) -> Result<()> {
    let io_err = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        if name.to_str().is_none_or(is_hidden) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, so a linked file or directory counts as itself.
        let metadata = std::fs::metadata(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        if metadata.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Store settings from the environment, keys lowercased as object_store's
/// config keys expect (`AWS_REGION` -> `aws_region`).
fn store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| STORE_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// What to list in a remote store: everything under `prefix`, optionally
/// filtered by a glob over the full object path.
struct RemoteTarget {
    store: Arc<dyn ObjectStore>,
    store_url: Url,
    prefix: Path,
    pattern: Option<glob::Pattern>,
}

fn open_remote(location: &str, url: &Url) -> Result<RemoteTarget> {
    let mut store_url = url.clone();
    store_url.set_path("/");
    store_url.set_query(None);
    store_url.set_fragment(None);

    let url_path = url.path();
    let (open_url, pattern) = match url_path.find(['*', '?', '[']) {
        Some(first_glob) => {
            let prefix_end = url_path[..first_glob].rfind('/').map_or(0, |i| i + 1);
            let mut prefix_url = url.clone();
            prefix_url.set_path(&url_path[..prefix_end]);
            let pattern_path = Path::from_url_path(url_path).map_err(|e| invalid(location, e))?;
            let pattern =
                glob::Pattern::new(pattern_path.as_ref()).map_err(|e| invalid(location, e))?;
            (prefix_url, Some(pattern))
        }
        None => (url.clone(), None),
    };
    let (store, prefix) =
        object_store::parse_url_opts(&open_url, store_options()).map_err(|source| {
            Error::ObjectStore {
                location: location.to_string(),
                source,
            }
        })?;
    Ok(RemoteTarget {
        store: Arc::from(store),
        store_url,
        prefix,
        pattern,
    })
}

async fn resolve_remote(location: &str, url: Url) -> Result<Resolved> {
    let target = open_remote(location, &url)?;
    let store_err = |source| Error::ObjectStore {
        location: location.to_string(),
        source,
    };

    // A URL naming one object is that object; anything else is a prefix.
    if target.pattern.is_none() && !url.path().ends_with('/') && !target.prefix.as_ref().is_empty()
    {
        match target.store.head(&target.prefix).await {
            Ok(meta) => {
                return Ok(Resolved {
                    store: target.store,
                    store_url: target.store_url,
                    files: vec![meta],
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(store_err(source)),
        }
    }

    let prefix = (!target.prefix.as_ref().is_empty()).then_some(&target.prefix);
    let listed: Vec<ObjectMeta> = target
        .store
        .list(prefix)
        .try_collect()
        .await
        .map_err(store_err)?;
    let prefix_parts = target.prefix.parts().count();
    let mut files: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|meta| {
            let visible = meta
                .location
                .parts()
                .skip(prefix_parts)
                .all(|part| !is_hidden(part.as_ref()));
            let matches = target
                .pattern
                .as_ref()
                .is_none_or(|p| p.matches_with(meta.location.as_ref(), glob_options()));
            visible && matches
        })
        .collect();
    if files.is_empty() {
        return Err(Error::NoFiles {
            location: location.to_string(),
        });
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(Resolved {
        store: target.store,
        store_url: target.store_url,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(location_url("s3://bucket/prefix/").is_some());
        assert!(location_url("file:///tmp/x").is_some());
        assert!(location_url("data/uwf/*.csv").is_none());
        assert!(location_url("/abs/path").is_none());
        assert!(location_url("C://odd").is_none());
    }

    #[test]
    fn relative_paths_become_absolute_and_normalised() -> Result<()> {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            path: ".".into(),
            source,
        })?;
        assert_eq!(absolute("x", FsPath::new("a/./b/../c"))?, cwd.join("a/c"));
        assert_eq!(
            absolute("x", FsPath::new("/a/b/../c"))?,
            PathBuf::from("/a/c")
        );
        Ok(())
    }

    #[test]
    fn s3_url_opens_without_network() -> Result<()> {
        let url =
            Url::parse("s3://bucket/logs/2024-01-0*/conn.*.log.gz").map_err(|e| invalid("u", e))?;
        let target = open_remote("u", &url)?;
        assert_eq!(target.store_url.as_str(), "s3://bucket/");
        assert_eq!(target.prefix.as_ref(), "logs");
        let pattern = target.pattern.ok_or_else(|| invalid("u", "no pattern"))?;
        assert!(pattern.matches_with("logs/2024-01-05/conn.00.log.gz", glob_options()));
        assert!(!pattern.matches_with("logs/2024-01-10/conn.00.log.gz", glob_options()));
        assert!(!pattern.matches_with("logs/2024-01-05/dns.00.log.gz", glob_options()));

        let plain = Url::parse("s3://bucket/prefix/").map_err(|e| invalid("u", e))?;
        let target = open_remote("u", &plain)?;
        assert_eq!(target.prefix.as_ref(), "prefix");
        assert!(target.pattern.is_none());
        Ok(())
    }

    #[test]
    fn hidden_names() {
        assert!(is_hidden("_SUCCESS"));
        assert!(is_hidden(".part-0.crc"));
        assert!(!is_hidden("conn.log"));
    }
}
