//! What a step may do, one module per capability. Each module owns its state and
//! limits and turns the step's grants into WASI settings or host-function checks.
//! Everything not granted is denied.
//!
//! - [`files`]: `read` / `write` grants as preopened folders;
//! - [`env`]: `env` grant;
//! - [`egress`]: `net` grant for TCP sockets;
//! - [`http`]: `net` grant for outgoing HTTP (`wasi:http/outgoing-handler`);
//! - [`load`]: the `load-generator` import, a whole HTTP load test run by the host
//!   under the same `net` grant checks;
//! - [`exec`]: `exec` grant, the `process` import, run in [`crate::sandbox`];
//!   [`confine`] is the Landlock layer of that sandbox, [`denials`] names the grant
//!   a failed program lacked;
//! - [`logs`]: the step log (stdout, stderr, `log` import, program output);
//! - [`secrets`]: `secrets` grant, the `secrets` import, secrets for programs;
//! - [`deploy`]: `targets` and `ssh` grants, the `deploy-targets` import (operations
//!   in [`crate::targets`]);
//! - [`grants`]: the `grants` import, which tells the plugin all of the above.

pub mod confine;
pub mod denials;
pub mod deploy;
pub mod egress;
pub mod env;
pub mod exec;
pub mod files;
pub mod grants;
pub mod http;
pub mod load;
pub mod logs;
pub mod secrets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::config::{Grants, Step};
use crate::host::step::AttemptCapabilities;
use crate::sandbox::Sandbox;
use crate::secrets::SecretValues;
use logs::{Source, StepLog};

/// A grant that cannot be honoured as written.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("`{grant}` grant {}: {reason}", path.display())]
    Path {
        grant: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The `targets` / `ssh` grants cannot be honoured (the text says which and why).
    #[error("{0}")]
    Deploy(String),
}

/// A step's grants, resolved against the machine once per step.
#[derive(Clone)]
pub struct StepSandbox {
    files: Arc<files::FileAccess>,
    env: Arc<env::EnvAccess>,
    net: Arc<egress::NetAccess>,
    http: Arc<http::HttpClient>,
    exec: Arc<Vec<String>>,
    workdir: PathBuf,
    programs: Arc<exec::StepPrograms>,
    secrets: Arc<secrets::SecretAccess>,
    allow_unconfined_exec: bool,
    /// The `targets` grant, when the step has one.
    deploy: Option<Arc<deploy::DeployGrant>>,
    /// What the `grants` import answers.
    granted: grants::SharedGrants,
}

impl StepSandbox {
    /// Resolve `step`'s grants. `workdir` is the pipeline's folder; `sandbox` isolates
    /// the native programs the step starts; `secrets` holds the run's secret values;
    /// `deploy` says where a step with a `targets` grant records (see [`deploy`]).
    pub fn resolve(
        step: &Step,
        workdir: PathBuf,
        sandbox: Arc<Sandbox>,
        secrets: &SecretValues,
        allow_unconfined_exec: bool,
        log: &StepLog,
        deploy: Option<deploy::DeploySetting>,
    ) -> Result<StepSandbox, GrantError> {
        let Grants {
            read,
            write,
            exec,
            net,
            env,
            secrets: secret_grants,
            toolchains,
            search_path,
            toolchain_env,
            // Resolved against the pipeline's `[[target]]`s by `deploy`.
            targets: _,
            ssh: _,
        } = &step.grants;
        for preset in toolchains {
            log.line(Source::Runner, &preset.describe(&workdir));
        }
        let files = Arc::new(files::FileAccess::resolve(read, write, log)?);
        for folder in toolchains.iter().flat_map(|p| p.cache_folders()) {
            std::fs::create_dir_all(&folder).map_err(|e| GrantError::Path {
                grant: "toolchain",
                path: folder.clone(),
                reason: format!("cannot make this cache folder: {e}"),
            })?;
        }
        // A deploy step's outgoing HTTP may reach its granted targets' `url` origins.
        let target_origins = match &deploy {
            Some(setting) if !step.grants.targets.is_empty() => deploy::url_origins(
                &crate::targets::spec::granted(&setting.targets, &step.grants),
            ),
            _ => Vec::new(),
        };
        let mut net_grants = net.clone();
        for origin in target_origins {
            if !net_grants.contains(&origin) {
                net_grants.push(origin);
            }
        }
        let net = Arc::new(egress::NetAccess::resolve(&net_grants, log));
        let exec = Arc::new(exec.clone());
        let limits = exec::NativeLimits {
            memory: step.memory,
            processes: u64::from(step.processes),
            tmp_size: step.tmpdir_size,
        };
        let programs = Arc::new(exec::StepPrograms::new(
            exec.clone(),
            Arc::new(search_path.clone()),
            files.clone(),
            net.clone(),
            sandbox,
            limits,
            log.clone(),
        ));
        // A step that may start programs gets its sandbox made while its plugin
        // starts.
        programs.prepare();
        let deploy = match deploy {
            Some(setting) => deploy::DeployGrant::resolve(
                &step.grants,
                &workdir,
                files.clone(),
                secrets,
                setting,
                log,
            )?
            .map(Arc::new),
            None => None,
        };
        let secret_access = Arc::new(secrets::SecretAccess::resolve(secret_grants, secrets));
        let granted = Arc::new(grants::GrantedView::new(
            &files,
            &step.grants,
            secret_access.names(),
        ));
        Ok(StepSandbox {
            files,
            env: Arc::new(env::EnvAccess::resolve(env, toolchain_env)),
            http: Arc::new(http::HttpClient::new(net.clone())),
            net,
            exec,
            workdir,
            programs,
            secrets: secret_access,
            allow_unconfined_exec,
            deploy,
            granted,
        })
    }

    /// The files capability.
    pub fn files(&self) -> &files::FileAccess {
        &self.files
    }

    /// The WASI context of one attempt: preopens, env, sockets, stdio into `log`.
    pub fn wasi(&self, log: &StepLog) -> Result<WasiCtx, GrantError> {
        let mut b = WasiCtxBuilder::new();
        // File operations on local disks finish in microseconds; running them in place
        // instead of handing each to a blocking thread makes a plugin that reads a
        // thousand small files (an advisory database) ten times faster. Must be set
        // before the preopens, which capture it. A call that blocks (a FIFO) is
        // interrupted at the step's deadline (see `host::deadline`).
        b.allow_blocking_current_thread(true);
        self.files.preopen(&mut b)?;
        self.env.apply(&mut b);
        // Secrets granted with `env` are variables for the plugin too.
        b.envs(&self.secrets.env());
        self.net.apply(&mut b, log);
        if let Some(cwd) = self.workdir.to_str() {
            b.initial_cwd(cwd);
        }
        b.stdout(log.stream(Source::Stdout));
        b.stderr(log.stream(Source::Stderr));
        Ok(b.build())
    }

    /// The `process`, `secrets` and outgoing-HTTP capabilities of one attempt.
    pub fn attempt(&self, log: &StepLog, deadline: Instant) -> AttemptCapabilities {
        AttemptCapabilities {
            exec: exec::ExecAccess {
                granted: self.exec.clone(),
                files: self.files.clone(),
                env: self.env.clone(),
                secrets: self.secrets.clone(),
                workdir: self.workdir.clone(),
                programs: self.programs.clone(),
                allow_unconfined: self.allow_unconfined_exec,
                deadline,
                log: log.clone(),
            },
            secrets: self.secrets.clone(),
            http: http::StepHttp::new(Some(self.http.clone()), log.clone(), deadline),
            load: load::LoadAccess::new(Some(self.http.clone()), log.clone(), deadline),
            deploy: self
                .deploy
                .as_ref()
                .map(|g| Arc::new(deploy::DeployAccess::new(g.clone(), deadline, log.clone()))),
            grants: self.granted.clone(),
        }
    }

    /// The names of the secrets the step is granted.
    pub fn secret_names(&self) -> Vec<String> {
        self.secrets.names()
    }

    /// The limits the step's native programs ran into since the last call (one
    /// attempt), as sentences.
    pub fn take_limit_violations(&self) -> Vec<String> {
        self.programs.take_violations()
    }

    /// The file accesses the step's failed programs were denied since the last call
    /// (one attempt), each naming the grant that would allow it.
    pub fn take_access_hints(&self) -> Vec<String> {
        self.programs.take_denials()
    }

    /// The step is over: stop making its sandbox if that is still under way.
    pub fn end_step(&self) {
        self.programs.abandon_preparation();
    }

    /// End every native program an attempt left running (daemons included).
    pub async fn end_attempt(&self) {
        self.programs.end_attempt().await;
    }
}
