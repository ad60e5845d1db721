//! Control groups: one per step, holding every native program of the step, with the
//! step's memory limit (`memory`) and process limit (`processes`), and counters that
//! tell afterwards whether a program was killed for memory or refused a process.
//!
//! Used where the machine lets the runner create them: cgroup v1 `memory` and `pids`
//! hierarchies (writable as root), or cgroup v2 with both controllers delegated to the
//! runner's own cgroup. Elsewhere the sandbox falls back to rlimits (see
//! [`super::Limits`]). Each step's group is created below the runner's own, so the
//! limits of whoever started the runner still apply on top.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How this machine lets the runner create groups.
#[derive(Debug, Clone)]
pub enum CgroupSupport {
    /// cgroup v1: the runner's folder in the memory and pids hierarchies.
    V1 { memory: PathBuf, pids: PathBuf },
    /// cgroup v2: the folder under which step groups are created (memory and pids
    /// enabled for its children).
    V2 { parent: PathBuf },
}

impl CgroupSupport {
    /// Find out, once per run. `Err` says why groups cannot be used.
    pub fn detect() -> Result<CgroupSupport, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let v1 = |controller: &str| -> Option<PathBuf> {
            let mount = mountinfo.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let mut r = right.split_whitespace();
                let (fstype, _, options) = (r.next()?, r.next()?, r.next()?);
                (fstype == "cgroup" && options.split(',').any(|o| o == controller))
                    .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
            })?;
            let path = own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.trim_start_matches('/').to_string())
            })?;
            let dir = mount.join(path);
            writable(&dir).then_some(dir)
        };
        if let (Some(memory), Some(pids)) = (v1("memory"), v1("pids")) {
            return Ok(CgroupSupport::V1 { memory, pids });
        }
        let unified = mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        });
        let Some(unified) = unified else {
            return Err("no writable cgroup memory and pids controllers".into());
        };
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/")
            .trim_start_matches('/');
        let base = unified.join(path);
        v2_delegate(&base).map(|parent| CgroupSupport::V2 { parent })
    }

    /// A short name for the step log.
    pub fn kind(&self) -> &'static str {
        match self {
            CgroupSupport::V1 { .. } => "cgroup v1",
            CgroupSupport::V2 { .. } => "cgroup v2",
        }
    }

    /// Remove groups left by runners that died (their process id is gone).
    pub fn remove_stale(&self) {
        let parents: Vec<&Path> = match self {
            CgroupSupport::V1 { memory, pids } => vec![memory, pids],
            CgroupSupport::V2 { parent } => vec![parent],
        };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix("sluice-")
                    .and_then(|r| r.split('-').next())
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                if !Path::new("/proc").join(pid.to_string()).exists() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
    }
}

fn writable(dir: &Path) -> bool {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Make `base` (the runner's own cgroup v2) able to hold step groups with the memory
/// and pids controllers: the runner moves into a leaf of its own, then enables both
/// controllers for the children of `base`.
fn v2_delegate(base: &Path) -> Result<PathBuf, String> {
    let controllers = std::fs::read_to_string(base.join("cgroup.controllers")).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            base.join("cgroup.controllers").display()
        )
    })?;
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !has("memory") || !has("pids") {
        return Err(format!(
            "the memory and pids controllers are not delegated to {}",
            base.display()
        ));
    }
    if !writable(base) {
        return Err(format!("{} is not writable", base.display()));
    }
    let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    let on = |c: &str| enabled.split_whitespace().any(|x| x == c);
    if on("memory") && on("pids") {
        return Ok(base.to_path_buf());
    }
    let leaf = base.join(format!("sluice-{}-runner", std::process::id()));
    let fail = |what: &str, e: io::Error| format!("{what}: {e}");
    std::fs::create_dir(&leaf).map_err(|e| fail("creating a leaf for the runner", e))?;
    std::fs::write(leaf.join("cgroup.procs"), b"0").map_err(|e| fail("moving the runner", e))?;
    if let Err(e) = std::fs::write(base.join("cgroup.subtree_control"), b"+memory +pids") {
        let _ = std::fs::write(base.join("cgroup.procs"), b"0");
        let _ = std::fs::remove_dir(&leaf);
        return Err(fail("enabling memory and pids for step groups", e));
    }
    Ok(base.to_path_buf())
}

static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);

/// Counters read after a program ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Programs killed for exceeding the memory limit.
    pub oom_kills: u64,
    /// Times a new process or thread was refused by the process limit.
    pub process_limit_hits: u64,
}

/// The group of one step.
pub struct StepCgroup {
    dirs: Vec<PathBuf>,
    version: u8,
}

impl StepCgroup {
    /// Create the group with these limits.
    pub fn create(support: &CgroupSupport, memory: u64, processes: u64) -> io::Result<StepCgroup> {
        let name = format!(
            "sluice-{}-{}",
            std::process::id(),
            NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
        );
        let group = match support {
            CgroupSupport::V1 { memory: m, pids } => {
                let group = StepCgroup {
                    dirs: vec![m.join(&name), pids.join(&name)],
                    version: 1,
                };
                for d in &group.dirs {
                    std::fs::create_dir(d)?;
                }
                let mem = &group.dirs[0];
                std::fs::write(mem.join("memory.limit_in_bytes"), memory.to_string())?;
                let swap = mem.join("memory.memsw.limit_in_bytes");
                if swap.exists() {
                    let _ = std::fs::write(swap, memory.to_string());
                }
                std::fs::write(group.dirs[1].join("pids.max"), processes.to_string())?;
                group
            }
            CgroupSupport::V2 { parent } => {
                let dir = parent.join(&name);
                std::fs::create_dir(&dir)?;
                let group = StepCgroup {
                    dirs: vec![dir.clone()],
                    version: 2,
                };
                std::fs::write(dir.join("memory.max"), memory.to_string())?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                std::fs::write(dir.join("pids.max"), processes.to_string())?;
                group
            }
        };
        Ok(group)
    }

    /// Set the memory and process limits (the group may already hold processes).
    pub fn set_limits(&self, memory: u64, processes: u64) -> io::Result<()> {
        match self.version {
            1 => {
                let mem = &self.dirs[0];
                let swap = mem.join("memory.memsw.limit_in_bytes");
                let limit = mem.join("memory.limit_in_bytes");
                // memsw may never be below the memory limit: order the two writes.
                let raising = std::fs::read_to_string(&limit)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .is_none_or(|current| memory > current);
                if raising && swap.exists() {
                    let _ = std::fs::write(&swap, memory.to_string());
                }
                std::fs::write(&limit, memory.to_string())?;
                if !raising && swap.exists() {
                    let _ = std::fs::write(&swap, memory.to_string());
                }
                std::fs::write(self.dirs[1].join("pids.max"), processes.to_string())
            }
            _ => {
                std::fs::write(self.dirs[0].join("memory.max"), memory.to_string())?;
                std::fs::write(self.dirs[0].join("pids.max"), processes.to_string())
            }
        }
    }

    /// `cgroup.procs` of every hierarchy, open for writing: a process writes `0` to
    /// join.
    pub fn procs_files(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let field = |path: PathBuf, key: &str| -> u64 {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
                })
                .unwrap_or(0)
        };
        match self.version {
            1 => Counters {
                oom_kills: field(self.dirs[0].join("memory.oom_control"), "oom_kill "),
                process_limit_hits: field(self.dirs[1].join("pids.events"), "max "),
            },
            _ => Counters {
                oom_kills: field(self.dirs[0].join("memory.events"), "oom_kill "),
                process_limit_hits: field(self.dirs[0].join("pids.events"), "max "),
            },
        }
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // Normally empty: every program's PID namespace died with it.
            for _ in 0..50 {
                if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                            let _ =
                                rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                    }
                }
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
    }
}
