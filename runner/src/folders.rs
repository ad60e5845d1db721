//! The folders Sluice writes for itself (`.sluice/`, run folders, report folders),
//! reached only through directory handles opened once: every file and sub-folder is
//! created relative to a handle, as a new entry, without following a symbolic link.
//! A link planted where the runner is about to write makes the write fail; it never
//! sends the write elsewhere.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// A folder the runner writes into, held open.
#[derive(Debug)]
pub struct OwnedDir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

fn with_path(path: &Path) -> impl Fn(rustix::io::Errno) -> io::Error + '_ {
    move |e| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            io::Error::other(format!(
                "{} is a symbolic link or not a folder; sluice does not write through links",
                path.display()
            ))
        } else {
            io::Error::other(format!("{}: {e}", path.display()))
        }
    }
}

impl OwnedDir {
    /// Open `path`, creating it (and its parents) when missing. The last component
    /// must be a real folder, not a link.
    pub fn open_or_create(path: &Path) -> io::Result<OwnedDir> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| io::Error::other(format!("{}: {e}", parent.display())))?;
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(with_path(path)(e)),
        }
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(with_path(path))?;
        Ok(OwnedDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where it is (for messages and records).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle.
    pub fn handle(&self) -> &OwnedFd {
        &self.fd
    }

    /// A sub-folder that must not exist yet.
    pub fn create_dir(&self, name: &str) -> io::Result<OwnedDir> {
        let path = self.path.join(name);
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(with_path(&path))?;
        self.open_dir(name)
    }

    /// A sub-folder, created when missing; never a link.
    pub fn dir(&self, name: &str) -> io::Result<OwnedDir> {
        let path = self.path.join(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(with_path(&path)(e)),
        }
        self.open_dir(name)
    }

    fn open_dir(&self, name: &str) -> io::Result<OwnedDir> {
        let path = self.path.join(name);
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(with_path(&path))?;
        Ok(OwnedDir { fd, path })
    }

    /// A new file, which must not exist yet; its path is `self.path()/name`.
    pub fn create_file(&self, name: &str) -> io::Result<File> {
        let path = self.path.join(name);
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(with_path(&path))?;
        Ok(File::from(fd))
    }

    /// Write a file anew: whatever is at `name` (a file, or a link a step planted) is
    /// removed first, without following it.
    pub fn replace_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(with_path(&self.path.join(name))(e)),
        }
        let mut f = self.create_file(name)?;
        f.write_all(bytes)?;
        Ok(())
    }

    /// Whether `name` exists (as anything, links included).
    pub fn contains(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// A second handle on the same folder.
    pub fn try_clone(&self) -> io::Result<OwnedDir> {
        Ok(OwnedDir {
            fd: self.fd.as_fd().try_clone_to_owned()?,
            path: self.path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_is_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let dir = OwnedDir::open_or_create(&root.path().join("run")).unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join("run/record.json")).unwrap();
        assert!(dir.create_file("record.json").is_err());
        dir.replace_file("record.json", b"the record").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(
            std::fs::read_to_string(root.path().join("run/record.json")).unwrap(),
            "the record"
        );
        std::os::unix::fs::symlink(outside.path(), root.path().join("run/logs")).unwrap();
        assert!(dir.dir("logs").is_err(), "a linked folder is refused");
    }
}
