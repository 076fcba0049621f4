//! The warm-restart file of `--cache-file` and `ctl dump-cache`: checked before anything is
//! written, written atomically, owner-only.
//!
//! A cache file is only ever replaced when it is missing or already a hopdns cache file
//! (first line `hopdns-cache <version>`): given `/etc/hosts` by mistake, hopdns refuses at
//! start instead of overwriting it at stop. It is written to a new temporary file in the
//! same directory (created 0600 with `O_EXCL`), synced, then renamed over the old one, so a
//! crash leaves either the old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::cache::{is_cache_header, Cache, MAGIC_PREFIX};

/// The directory `path` lives in (`.` for a bare file name).
fn directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Ok when `path` may be replaced: missing, or a regular file whose first line is a hopdns
/// cache header.
pub fn check_target(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let refuse = |what: &str| {
        Err(format!(
            "{} {what}; refusing to load or overwrite it: choose another cache file, or \
             remove this one",
            path.display()
        ))
    };
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    let mut head = Vec::new();
    let read = File::open(path).and_then(|f| f.take(64).read_to_end(&mut head));
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    match read {
        Ok(_) if is_cache_header(String::from_utf8_lossy(first).trim_end()) => Ok(()),
        Ok(_) => refuse(&format!(
            "is not a hopdns cache file (its first line is not `{MAGIC_PREFIX}<version>`)"
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// A new temporary file beside `path`, owner-only, that did not exist before.
fn create_temporary(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let dir = directory(path);
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cache".into());
    let mut last = None;
    for _ in 0..8 {
        let temporary = dir.join(format!(".{base}.{:016x}.tmp", rand::random::<u64>()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
        {
            Ok(f) => return Ok((temporary, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name free")))
}

/// `serve --cache-file`'s checks at start: the directory exists and takes new files, and
/// the file is missing or ours. Everything that would fail at stop fails here instead.
pub fn check_at_start(path: &Path) -> Result<(), String> {
    let dir = directory(path);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "cache file {}: {} is not a directory",
                path.display(),
                dir.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "cache file {}: directory {}: {e} (create it, or with systemd set \
                 StateDirectory=hopdns and use /var/lib/hopdns/cache)",
                path.display(),
                dir.display()
            ))
        }
    }
    let (temporary, _) = create_temporary(path).map_err(|e| {
        format!(
            "cache file {}: cannot create files in {}: {e} (the cache could not be saved \
             there; give hopdns's user write access or choose another directory)",
            path.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&temporary);
    check_target(path).map_err(|e| format!("cache file: {e}"))
}

/// Writes the cache to `path` atomically (see the module doc); returns the entries written.
pub fn save(cache: &Cache, path: &Path) -> Result<usize, String> {
    check_target(path)?;
    let (temporary, file) =
        create_temporary(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let write = || -> std::io::Result<usize> {
        let mut out = BufWriter::new(file);
        let n = cache.dump(&mut out)?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(directory(path)) {
            let _ = d.sync_all();
        }
        Ok(n)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_missing_files_and_cache_files_may_be_replaced() {
        let dir = std::env::temp_dir().join(format!("hopdns-cachefile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let e = check_at_start(&hosts).unwrap_err();
        assert!(e.contains("is not a hopdns cache file"), "{e}");
        let e = save(&Cache::default(), &hosts).unwrap_err();
        assert!(e.contains("refusing"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&hosts).unwrap(),
            "127.0.0.1 localhost\n"
        );
        let e = check_at_start(&dir).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = check_at_start(&dir.join("nowhere/cache")).unwrap_err();
        assert!(e.contains("nowhere") && e.contains("StateDirectory"), "{e}");

        let cache = dir.join("cache");
        check_at_start(&cache).unwrap();
        assert_eq!(save(&Cache::default(), &cache).unwrap(), 0);
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        check_at_start(&cache).unwrap();
        save(&Cache::default(), &cache).unwrap();
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
