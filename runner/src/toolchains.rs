//! Toolchain presets: `toolchain = "rust" | "python" | "node" | "go"` (or a list) in a
//! step's grants, turned into ordinary grants and variables so that every existing
//! check (mount table, Landlock, `exec` names, the runner's hidden folders) applies.
//!
//! A preset is discovered on this machine, once per toolchain and pipeline folder, by
//! asking the toolchain itself where it lives (`rustc --print sysroot`, the
//! interpreter's `sys.prefix`/`sys.base_prefix` with pyenv shims resolved by running
//! them, `go env -json`, the real path of `node`). It grants:
//!
//! - **read**: the installation (outside the system folders every sandbox has);
//! - **exec**: the programs of the toolchain's own `bin` folders (all of them for a
//!   folder the toolchain owns, such as `~/.cargo/bin` or a virtual environment; only
//!   the toolchain's known programs for a shared one such as `/usr/bin`), and puts
//!   those folders first on the programs' search path;
//! - **write**: the pipeline's tool cache, [`CACHE_DIR`] next to the pipeline file,
//!   kept between runs and never inside sluice's own folders; every cache the
//!   toolchain would write in the home folder or the project is pointed there by a
//!   variable (`HOME`, `XDG_CACHE_HOME`, `GOCACHE`, `PYTHONPYCACHEPREFIX`, ...).
//!
//! What each preset grants is listed in `docs/design/0010-toolchain-presets.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The pipeline's tool cache folder, next to the pipeline file.
pub const CACHE_DIR: &str = ".sluice-cache";

/// The longest a discovery command may take (a rustup proxy may sync a toolchain
/// manifest; an interpreter imports `site`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Folders on every sandbox's search path already; never put first, never listed
/// whole.
const SHARED_BIN_FOLDERS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A toolchain a preset can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Toolchain {
    Rust,
    Python,
    Node,
    Go,
}

impl Toolchain {
    /// Every toolchain, in the order they are documented.
    pub const ALL: [Toolchain; 4] = [
        Toolchain::Rust,
        Toolchain::Python,
        Toolchain::Node,
        Toolchain::Go,
    ];

    /// The name written in `toolchain = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Rust => "rust",
            Toolchain::Python => "python",
            Toolchain::Node => "node",
            Toolchain::Go => "go",
        }
    }

    /// The toolchain called `name`.
    pub fn parse(name: &str) -> Option<Toolchain> {
        Toolchain::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The programs of this toolchain granted from a shared `bin` folder.
    fn known_programs(self) -> &'static [&'static str] {
        match self {
            Toolchain::Rust => &[
                "cargo",
                "rustc",
                "rustdoc",
                "rustup",
                "rustfmt",
                "cargo-fmt",
                "cargo-clippy",
                "clippy-driver",
            ],
            Toolchain::Python => &[
                "python3", "python", "pip", "pip3", "pytest", "py.test", "ruff", "mypy",
            ],
            Toolchain::Node => &["node", "nodejs", "npm", "npx", "corepack"],
            Toolchain::Go => &["go", "gofmt"],
        }
    }
}

impl std::fmt::Display for Toolchain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A toolchain as found on this machine, as grants and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub toolchain: Toolchain,
    /// Folders to read: the installation (system folders left out).
    pub read: Vec<PathBuf>,
    /// Folders to write: the pipeline's tool cache.
    pub write: Vec<PathBuf>,
    /// `bin` folders searched for programs before the runner's PATH, and put first on
    /// the programs' PATH.
    pub search_path: Vec<PathBuf>,
    /// Programs granted by name (found on [`Preset::search_path`] first).
    pub exec: Vec<String>,
    /// Variables for the plugin and its programs: caches redirected into the tool
    /// cache, the installation's homes.
    pub env: Vec<(String, String)>,
}

impl Preset {
    /// The folders inside the tool cache that the preset's variables name (HOME,
    /// GOCACHE, ...), to make before programs start: many tools expect them to exist.
    pub fn cache_folders(&self) -> Vec<PathBuf> {
        self.env
            .iter()
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_absolute() && self.write.iter().any(|w| p.starts_with(w)))
            .collect()
    }

    /// One line for the step log and `sluice validate`: what the preset grants and
    /// where it sends caches, with paths shown relative to the pipeline folder or the
    /// home folder.
    pub fn describe(&self, pipeline_dir: &Path) -> String {
        let show = |p: &Path| shown_path(p, pipeline_dir);
        let list = |paths: &[PathBuf]| {
            if paths.is_empty() {
                "-".to_string()
            } else {
                paths.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
            }
        };
        let env = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", show(Path::new(v))))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "toolchain {}: read {}; write {}; exec {} (searched first: {}); env {}",
            self.toolchain,
            list(&self.read),
            list(&self.write),
            if self.exec.is_empty() {
                "-".to_string()
            } else {
                self.exec.join(", ")
            },
            list(&self.search_path),
            env
        )
    }
}

/// `path` relative to the pipeline folder (`./x`) or the home folder (`~/x`) when it
/// lies there; other text unchanged.
pub fn shown_path(path: &Path, pipeline_dir: &Path) -> String {
    if let Ok(rest) = path.strip_prefix(pipeline_dir) {
        return if rest.as_os_str().is_empty() {
            ".".into()
        } else {
            rest.display().to_string()
        };
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && home != Path::new("/")
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// A toolchain that could not be found or asked where it lives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("toolchain `{toolchain}`: `{program}` is not installed (not found on PATH={path})")]
    NotInstalled {
        toolchain: Toolchain,
        program: String,
        path: String,
    },
    #[error("toolchain `{toolchain}`: `{command}` failed: {reason}")]
    Probe {
        toolchain: Toolchain,
        command: String,
        reason: String,
    },
}

/// What [`discover`] found, by toolchain and pipeline folder.
type Discovered = HashMap<(Toolchain, PathBuf), Result<Preset, DiscoveryError>>;

/// The preset of `toolchain` for the pipeline in `pipeline_dir`, discovered once per
/// process.
pub fn discover(toolchain: Toolchain, pipeline_dir: &Path) -> Result<Preset, DiscoveryError> {
    static FOUND: OnceLock<Mutex<Discovered>> = OnceLock::new();
    let key = (toolchain, pipeline_dir.to_path_buf());
    let found = FOUND.get_or_init(Default::default);
    if let Some(known) = found.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return known.clone();
    }
    let preset = Discovery::new(toolchain, pipeline_dir).run();
    found
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, preset.clone());
    preset
}

/// The pipeline's tool cache folder.
pub fn cache_root(pipeline_dir: &Path) -> PathBuf {
    pipeline_dir.join(CACHE_DIR)
}

/// Variables every preset sets: a home folder and an XDG cache inside the tool cache,
/// so that whatever a tool keeps "in the home folder" lands somewhere writable and
/// persistent instead of failing.
fn common_env(cache: &Path) -> Vec<(String, String)> {
    vec![
        var("HOME", cache.join("home")),
        var("XDG_CACHE_HOME", cache.join("xdg-cache")),
        var("XDG_CONFIG_HOME", cache.join("home/.config")),
        var("XDG_DATA_HOME", cache.join("home/.local/share")),
    ]
}

fn var(name: &str, value: impl AsRef<Path>) -> (String, String) {
    (name.to_string(), value.as_ref().display().to_string())
}

struct Discovery<'a> {
    toolchain: Toolchain,
    dir: &'a Path,
    cache: PathBuf,
    preset: Preset,
}

impl<'a> Discovery<'a> {
    fn new(toolchain: Toolchain, dir: &'a Path) -> Discovery<'a> {
        let cache = cache_root(dir);
        Discovery {
            toolchain,
            dir,
            preset: Preset {
                toolchain,
                read: Vec::new(),
                write: vec![cache.clone()],
                search_path: Vec::new(),
                exec: Vec::new(),
                env: common_env(&cache),
            },
            cache,
        }
    }

    fn run(mut self) -> Result<Preset, DiscoveryError> {
        match self.toolchain {
            Toolchain::Rust => self.rust()?,
            Toolchain::Python => self.python()?,
            Toolchain::Node => self.node()?,
            Toolchain::Go => self.go()?,
        }
        Ok(self.preset)
    }

    /// `~/.cargo` and `~/.rustup` (or `CARGO_HOME`/`RUSTUP_HOME`), the active
    /// toolchain's sysroot; cargo's home stays read-only (its registry is read, not
    /// fetched), and a project without a writable `target` builds into the cache (set
    /// in [`crate::config`], which knows the step's write grants).
    fn rust(&mut self) -> Result<(), DiscoveryError> {
        let cargo = self.find("cargo")?;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cargo")))
            .filter(|p| p.is_dir());
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".rustup")))
            .filter(|p| p.is_dir());
        let mut env = Vec::new();
        if let Some(h) = &cargo_home {
            env.push(var("CARGO_HOME", h));
        }
        if let Some(h) = &rustup_home {
            env.push(var("RUSTUP_HOME", h));
        }
        let rustc = cargo.with_file_name("rustc");
        let rustc = if rustc.is_file() {
            rustc
        } else {
            self.find("rustc")?
        };
        let sysroot = self.probe(&rustc, &["--print", "sysroot"], &env)?;
        let sysroot = PathBuf::from(sysroot.trim());
        for folder in [cargo_home.clone(), rustup_home, Some(sysroot.clone())]
            .into_iter()
            .flatten()
        {
            self.read(&folder);
        }
        let bin = cargo.parent().map(Path::to_path_buf);
        for folder in [bin, Some(sysroot.join("bin"))].into_iter().flatten() {
            self.programs_of(&folder);
        }
        self.preset.env.extend(env);
        Ok(())
    }

    /// The interpreter of the project's virtual environment (`.venv` or `venv` next to
    /// the pipeline file) or the first `python3` on PATH; a pyenv shim is run to learn
    /// the real interpreter. Bytecode, pytest's, ruff's, mypy's and pip's caches go to
    /// the tool cache.
    fn python(&mut self) -> Result<(), DiscoveryError> {
        let venv = [".venv", "venv"]
            .iter()
            .map(|v| self.dir.join(v))
            .find(|v| v.join("bin/python").is_file() || v.join("bin/python3").is_file());
        let interpreter = match &venv {
            Some(v) if v.join("bin/python3").is_file() => v.join("bin/python3"),
            Some(v) => v.join("bin/python"),
            None => self.find("python3")?,
        };
        let answer = self.probe(
            &interpreter,
            &[
                "-c",
                "import sys, site\n\
                 print(sys.executable)\nprint(sys.prefix)\nprint(sys.base_prefix)\n\
                 print(site.USER_BASE or '')\nprint(site.USER_SITE or '')",
            ],
            &[],
        )?;
        let lines: Vec<&str> = answer.lines().map(str::trim).collect();
        let [executable, prefix, base_prefix, user_base, user_site, ..] = lines[..] else {
            return Err(DiscoveryError::Probe {
                toolchain: self.toolchain,
                command: format!("{} -c 'import sys, site ...'", interpreter.display()),
                reason: format!("unexpected answer {answer:?}"),
            });
        };
        let prefix = PathBuf::from(prefix);
        let base_prefix = PathBuf::from(base_prefix);
        let executable = std::fs::canonicalize(executable).unwrap_or_else(|_| executable.into());
        self.read(&prefix);
        self.read(&base_prefix);
        if let Some(real_bin) = executable.parent() {
            // A venv's interpreter is a link into the base installation.
            if !real_bin.starts_with(&base_prefix) {
                self.read(real_bin);
            }
        }
        // Packages installed with `pip install --user` stay importable although HOME
        // moves into the cache.
        if !user_site.is_empty() && Path::new(user_site).is_dir() {
            self.read(Path::new(user_base));
            self.preset.env.push(var("PYTHONUSERBASE", user_base));
        }
        for bin in [prefix.join("bin"), base_prefix.join("bin")] {
            self.programs_of(&bin);
        }
        if let Some(v) = &venv {
            self.preset.env.push(var("VIRTUAL_ENV", v));
        }
        let cache = self.cache.join("python");
        self.preset.env.extend([
            var("PYTHONPYCACHEPREFIX", cache.join("pycache")),
            (
                "PYTEST_ADDOPTS".to_string(),
                format!("-o cache_dir={}", cache.join("pytest-cache").display()),
            ),
            var("RUFF_CACHE_DIR", cache.join("ruff")),
            var("MYPY_CACHE_DIR", cache.join("mypy")),
            var("PIP_CACHE_DIR", cache.join("pip")),
        ]);
        Ok(())
    }

    /// The installation `node` belongs to, and the project's `node_modules/.bin`
    /// (read through the project's own grant). npm's cache goes to the tool cache.
    fn node(&mut self) -> Result<(), DiscoveryError> {
        let node = self.find("node")?;
        let real = std::fs::canonicalize(&node).unwrap_or(node.clone());
        // Ask node itself: a version manager's shim is not the installation.
        let exec_path = self.probe(&node, &["-p", "process.execPath"], &[])?;
        let real = std::fs::canonicalize(exec_path.trim()).unwrap_or(real);
        let bin = real.parent().map(Path::to_path_buf);
        if let Some(prefix) = bin.as_deref().and_then(Path::parent) {
            self.read(prefix);
        }
        let project_bin = self.dir.join("node_modules/.bin");
        if project_bin.is_dir() {
            self.programs_of(&project_bin);
        }
        for folder in [node.parent().map(Path::to_path_buf), bin]
            .into_iter()
            .flatten()
        {
            self.programs_of(&folder);
        }
        let cache = self.cache.join("node");
        self.preset.env.extend([
            var("npm_config_cache", cache.join("npm")),
            ("npm_config_update_notifier".into(), "false".into()),
            ("npm_config_fund".into(), "false".into()),
            ("npm_config_audit".into(), "false".into()),
        ]);
        Ok(())
    }

    /// GOROOT and the module cache (read-only: a step that downloads modules also
    /// needs `write` on it and a `net` grant); the build cache and GOPATH go to the
    /// tool cache, and Go never downloads another toolchain.
    fn go(&mut self) -> Result<(), DiscoveryError> {
        let go = self.find("go")?;
        let answer = self.probe(&go, &["env", "GOROOT", "GOMODCACHE"], &[])?;
        let mut lines = answer.lines().map(str::trim);
        let (Some(goroot), Some(modcache)) = (lines.next(), lines.next()) else {
            return Err(DiscoveryError::Probe {
                toolchain: self.toolchain,
                command: format!("{} env GOROOT GOMODCACHE", go.display()),
                reason: format!("unexpected answer {answer:?}"),
            });
        };
        let goroot = PathBuf::from(goroot);
        self.read(&goroot);
        self.programs_of(&goroot.join("bin"));
        if let Some(bin) = go.parent() {
            self.programs_of(bin);
        }
        let cache = self.cache.join("go");
        let modcache = if !modcache.is_empty() && Path::new(modcache).is_dir() {
            self.read(Path::new(modcache));
            PathBuf::from(modcache)
        } else {
            cache.join("mod")
        };
        self.preset.env.extend([
            var("GOROOT", &goroot),
            var("GOCACHE", cache.join("build")),
            var("GOPATH", cache.join("path")),
            var("GOMODCACHE", &modcache),
            ("GOTOOLCHAIN".into(), "local".into()),
        ]);
        Ok(())
    }

    /// The first `program` on the runner's PATH.
    fn find(&self, program: &str) -> Result<PathBuf, DiscoveryError> {
        crate::capabilities::exec::resolve_program(program)
            .map(|r| r.path)
            .ok_or_else(|| DiscoveryError::NotInstalled {
                toolchain: self.toolchain,
                program: program.to_string(),
                path: std::env::var("PATH").unwrap_or_default(),
            })
    }

    /// Grant reading `folder` unless a system folder every sandbox has covers it.
    fn read(&mut self, folder: &Path) {
        if folder.as_os_str().is_empty() || !folder.is_dir() || in_system_folder(folder) {
            return;
        }
        let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        if !self.preset.read.iter().any(|r| folder.starts_with(r)) {
            self.preset.read.retain(|r| !r.starts_with(&folder));
            self.preset.read.push(folder);
        }
    }

    /// Search `bin` first and grant its programs: all of them when the toolchain owns
    /// the folder, its known programs when the folder is shared.
    fn programs_of(&mut self, bin: &Path) {
        if !bin.is_dir() {
            return;
        }
        let shared = SHARED_BIN_FOLDERS.iter().any(|s| bin == Path::new(s));
        let names: Vec<String> = if shared {
            self.toolchain
                .known_programs()
                .iter()
                .filter(|n| is_program(&bin.join(n)))
                .map(|n| n.to_string())
                .collect()
        } else {
            let mut names: Vec<String> = std::fs::read_dir(bin)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| is_program(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            names
        };
        if !shared && !self.preset.search_path.iter().any(|p| p == bin) {
            self.preset.search_path.push(bin.to_path_buf());
        }
        for name in names {
            if !self.preset.exec.contains(&name) {
                self.preset.exec.push(name);
            }
        }
    }

    /// Run `program args` in the pipeline folder (where toolchain files such as
    /// `rust-toolchain.toml` or `.python-version` apply) and return its output.
    fn probe(
        &self,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<String, DiscoveryError> {
        let shown = crate::capabilities::exec::shell_line(
            &program.display().to_string(),
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        let fail = |reason: String| DiscoveryError::Probe {
            toolchain: self.toolchain,
            command: shown.clone(),
            reason,
        };
        let mut child = Command::new(program)
            .args(args)
            .current_dir(self.dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // A toolchain file naming a missing toolchain fails instead of installing it.
            .env("RUSTUP_AUTO_INSTALL", "0")
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "no answer after {}s",
                        PROBE_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Err(fail(format!(
                "{}{}",
                out.status,
                last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
            )));
        }
        String::from_utf8(out.stdout).map_err(|e| fail(e.to_string()))
    }
}

/// Whether `path` lies in a folder every sandbox has already (`/usr`, `/etc`, ...).
fn in_system_folder(path: &Path) -> bool {
    crate::sandbox::mounts::SYSTEM_FOLDERS
        .iter()
        .any(|s| path.starts_with(s))
}

fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Toolchain::ALL {
            assert_eq!(Toolchain::parse(t.name()), Some(t));
        }
        assert_eq!(Toolchain::parse("ruby"), None);
    }

    #[test]
    fn a_missing_program_is_named_with_the_path_searched() {
        let d = Discovery::new(Toolchain::Go, Path::new("/nonexistent"));
        let e = d.find("no-such-program-for-sluice").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("toolchain `go`: `no-such-program-for-sluice` is not installed"),
            "{e}"
        );
    }

    #[test]
    fn shared_bin_folders_grant_only_known_programs() {
        let mut d = Discovery::new(Toolchain::Node, Path::new("/nonexistent"));
        d.programs_of(Path::new("/usr/bin"));
        assert!(d.preset.search_path.is_empty());
        assert!(
            d.preset
                .exec
                .iter()
                .all(|p| Toolchain::Node.known_programs().contains(&p.as_str()))
        );
        assert!(!d.preset.exec.contains(&"sh".to_string()));
    }

    #[test]
    fn caches_go_into_the_pipeline_tool_cache() {
        let d = Discovery::new(Toolchain::Python, Path::new("/p"));
        assert_eq!(d.preset.write, vec![PathBuf::from("/p/.sluice-cache")]);
        assert!(
            d.preset
                .env
                .contains(&("HOME".into(), "/p/.sluice-cache/home".into()))
        );
    }
}
