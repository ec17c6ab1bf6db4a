//! The results file on disk: one writer at a time (an exclusive lock), never the input,
//! never a file of sent outcomes replaced by mistake, and never written into a file that
//! was removed from under the job.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The middle of the name of a file that holds a run's rows after its results file was
/// replaced under it: `<results file>.dbprov-rescued-<pid>`.
pub const RESCUED: &str = ".dbprov-rescued-";

/// Why a results file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Another process holds the lock.
    #[error(
        "{path} is in use by another dbprov process ({holder}): a job writing it, or one reading it (a rollback, a retry -o). Wait for it to end, or give another -o"
    )]
    Locked {
        /// The results file.
        path: String,
        /// Who holds it, as far as can be told.
        holder: String,
    },
    /// The file cannot be opened or locked.
    #[error("cannot open the results file {path}")]
    Io {
        /// The results file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A results file opened for this run: exclusively locked for as long as this lives, with
/// symbolic links resolved for the rewrite at the end.
#[derive(Debug)]
pub struct OutputFile {
    /// The path as given.
    pub path: PathBuf,
    /// The path with symbolic links resolved: where a rewrite puts the new file, so that a
    /// link stays a link.
    pub real_path: PathBuf,
    /// Open for reading and writing, locked.
    pub file: File,
    identity: FileId,
}

/// A file's device and inode: two paths name one file exactly when these are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of what `meta` describes.
    pub fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The identity of the file at `path`, if it exists (links followed).
    pub fn at(path: &Path) -> Option<FileId> {
        std::fs::metadata(path).ok().map(|m| FileId::of(&m))
    }

    /// The identity of what standard input reads.
    pub fn of_stdin() -> Option<FileId> {
        use std::os::fd::AsFd;
        Self::of_fd(std::io::stdin().as_fd())
    }

    /// The identity of where standard output goes.
    pub fn of_stdout() -> Option<FileId> {
        use std::os::fd::AsFd;
        Self::of_fd(std::io::stdout().as_fd())
    }

    /// The identity of where standard error goes.
    pub fn of_stderr() -> Option<FileId> {
        use std::os::fd::AsFd;
        Self::of_fd(std::io::stderr().as_fd())
    }

    fn of_fd(fd: std::os::fd::BorrowedFd<'_>) -> Option<FileId> {
        let fd = fd.try_clone_to_owned().ok()?;
        File::from(fd).metadata().ok().map(|m| FileId::of(&m))
    }
}

/// Whether two paths name one file: by device and inode when both exist (hard links and
/// symbolic links included), else by where they lead once symbolic links and `..` are
/// resolved (a path that does not exist yet, or a link to one).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (FileId::at(a), FileId::at(b)) {
        (Some(a), Some(b)) => a == b,
        (None, None) | (Some(_), None) | (None, Some(_)) => {
            let (a, b) = (resolve(a), resolve(b));
            a.is_some() && a == b
        }
    }
}

/// Where a path leads: symbolic links followed (as far as they go, dangling ones too),
/// `..` resolved in the folder that exists. `None` for a loop, or a folder that is not.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let mut path = std::path::absolute(path).ok()?;
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => path = path.parent()?.join(target),
            Err(_) => break,
        }
    }
    let folder = path.parent()?.canonicalize().ok()?;
    Some(folder.join(path.file_name()?))
}

impl OutputFile {
    /// Opens (creating if need be, never truncating) and locks the results file. Fails at
    /// once, naming the holder, if another process holds it.
    pub fn lock(path: &Path) -> Result<OutputFile, OutputError> {
        let io = |source| OutputError::Io {
            path: path.display().to_string(),
            source,
        };
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(OutputError::Locked {
                        path: path.display().to_string(),
                        holder: holder(&file),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            let identity = FileId::of(&file.metadata().map_err(io)?);
            // Another process may have replaced the file (its rewrite at the end) between
            // our open and our lock: then the lock is on a file nobody will read again.
            if FileId::at(path) != Some(identity) {
                continue;
            }
            let real_path = path.canonicalize().map_err(io)?;
            return Ok(OutputFile {
                path: path.to_owned(),
                real_path,
                file,
                identity,
            });
        }
    }

    /// The file's identity.
    pub fn id(&self) -> FileId {
        self.identity
    }

    /// Whether the path still names the file this run writes.
    pub fn still_there(&self) -> bool {
        FileId::at(&self.path) == Some(self.identity)
    }

    /// Checks, before any request, that the rewrite at the end can be done: a temporary
    /// file can be made beside the real file.
    pub fn check_rewrite(&self) -> std::io::Result<()> {
        super::rewrite::temp_beside(&self.real_path).map(drop)
    }

    /// After the file was removed or replaced under the job: writes what it holds back to
    /// its path (through a symbolic link, with its mode) if the path is free, else beside
    /// it under a name of its own. Says where the rows are now.
    pub fn write_back(&self) -> std::io::Result<PathBuf> {
        let free = std::fs::symlink_metadata(&self.real_path).is_err();
        let to = if free {
            self.real_path.clone()
        } else {
            let mut name = self.real_path.clone().into_os_string();
            name.push(format!("{RESCUED}{}", std::process::id()));
            PathBuf::from(name)
        };
        let mut restored = OpenOptions::new().write(true).create_new(true).open(&to)?;
        restored.set_permissions(self.file.metadata()?.permissions())?;
        let mut held = self.file.try_clone()?;
        held.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut held, &mut restored)?;
        restored.flush()?;
        restored.sync_all()?;
        Ok(to)
    }
}

/// Who holds the lock on `file`: the process that `/proc/locks` names, with its command
/// line, or a plain "another process" where that cannot be read.
pub(crate) fn holder(file: &File) -> String {
    let unknown = || "another process".to_owned();
    let Ok(meta) = file.metadata() else {
        return unknown();
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return unknown();
    };
    // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF"
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let inode = fields.get(5)?.rsplit(':').next()?;
        (inode.parse::<u64>().ok()? == meta.ino()).then(|| fields.get(4).copied())?
    });
    let Some(pid) = pid else {
        return unknown();
    };
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            let words: Vec<String> = bytes
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words.join(" ")
        })
        .unwrap_or_default();
    if command.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid}: {command}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let first = OutputFile::lock(&path).unwrap();
        // flock locks belong to an open file: a second open in this process conflicts too.
        let error = OutputFile::lock(&path).unwrap_err().to_string();
        assert!(
            error.contains("in use by another dbprov process"),
            "{error}"
        );
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        OutputFile::lock(&path).unwrap();
    }

    #[test]
    fn a_removed_file_is_noticed_and_written_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let mut output = OutputFile::lock(&path).unwrap();
        output.file.write_all(b"header\nrow\n").unwrap();
        assert!(output.still_there());
        std::fs::remove_file(&path).unwrap();
        assert!(!output.still_there());
        assert_eq!(output.write_back().unwrap(), output.real_path);
        assert_eq!(std::fs::read(&path).unwrap(), b"header\nrow\n");
    }

    #[test]
    fn a_replaced_file_is_written_beside_the_newcomer() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut output = OutputFile::lock(&path).unwrap();
        output.file.write_all(b"header\nrow\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "someone else's").unwrap();
        let rescued = output.write_back().unwrap();
        assert_ne!(rescued, output.real_path);
        assert_eq!(std::fs::read(&rescued).unwrap(), b"header\nrow\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        let mode = std::fs::metadata(&rescued).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
