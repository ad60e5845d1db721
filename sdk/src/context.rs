//! [`StepContext`]: what a running step knows about itself, its pipeline and the steps
//! that ran before it, taken from the host's `step-input`.

use std::path::{Path, PathBuf};

use crate::{Artifact, PluginUse, StepInput, StepOutput};

/// Who and where the running step is. Built from the host's [`StepInput`] (minus the
/// configuration, which the plugin receives already parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct StepContext {
    run_id: String,
    pipeline: String,
    stage: String,
    step: String,
    workdir: PathBuf,
    attempt: u32,
    artifact: Option<Artifact>,
    outputs: Vec<StepOutput>,
    plugins: Vec<PluginUse>,
}

impl StepContext {
    /// Unique id of this run of the pipeline.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Name of the pipeline.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Name of the stage the step belongs to.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Id of the step.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// Absolute path of the folder that holds the pipeline file. It is the working
    /// directory, and relative grants are resolved against it.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// `path` resolved against [`workdir`](Self::workdir): relative paths are joined to
    /// it, absolute ones are returned as they are.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.workdir.join(path)
    }

    /// What the step was granted (its folders, programs, addresses, variables,
    /// secrets and targets): see [`crate::grants`]. `ctx.grants().check(ctx.resolve(p),
    /// Access::Read)?` resolves `p` or fails with `Denied` naming the grant to add.
    pub fn grants(&self) -> crate::grants::Grants {
        crate::grants::current()
    }

    /// 1 on the first attempt, 2 on the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether this attempt is a retry of a failed one.
    pub fn is_retry(&self) -> bool {
        self.attempt > 1
    }

    /// The artifact under test, when the pipeline has one.
    pub fn artifact(&self) -> Option<&Artifact> {
        self.artifact.as_ref()
    }

    /// The plugins the run used so far (finished steps), then this step's own: what a
    /// provenance statement records.
    pub fn plugins(&self) -> &[PluginUse] {
        &self.plugins
    }

    /// Every output published by the steps that finished before this one.
    pub fn outputs(&self) -> &[StepOutput] {
        &self.outputs
    }

    /// The value that step `step` published as `name`, if it did.
    pub fn output(&self, step: &str, name: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|output| output.step == step && output.name == name)
            .map(|output| output.value.as_str())
    }
}

/// Make `workdir` the process's working directory, as the contract promises.
///
/// WASI preview 2 has no working directory of its own: wasi-libc keeps one itself,
/// starting at `/`, joins relative paths to it and looks the result up among the
/// preopened folders. `chdir` only accepts a folder inside a preopen, but a step is
/// often granted subfolders of the pipeline's folder (`read = ["src"]`) and not the
/// folder itself; `src/main.rs` must still mean the file under the pipeline's folder.
/// So when `chdir` refuses, set wasi-libc's working directory variable directly: that
/// changes only how relative paths are spelled out, never what the preopens allow.
#[cfg(target_arch = "wasm32")]
pub(crate) fn enter_workdir(workdir: &Path) {
    if std::env::set_current_dir(workdir).is_ok() {
        return;
    }
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    {
        use std::ffi::{CString, c_char};

        unsafe extern "C" {
            /// wasi-libc's working directory (libc-bottom-half/sources/chdir.c and
            /// getcwd.c): an absolute path, consulted by every call with a relative path.
            static mut __wasilibc_cwd: *mut c_char;
        }

        let Some(text) = workdir.to_str().filter(|text| text.starts_with('/')) else {
            return;
        };
        let Ok(cwd) = CString::new(text) else { return };
        // Leaked on purpose: wasi-libc keeps pointing at it. It does not free it on a later
        // `chdir` either, because its `__wasilibc_cwd_mallocd` flag stays unset.
        let cwd = cwd.into_raw();
        // SAFETY: wasip2 components are single-threaded, nothing else is reading the
        // variable right now, and it now points at a NUL-terminated string that lives
        // for the rest of the instance.
        unsafe {
            __wasilibc_cwd = cwd;
        }
    }
}

impl From<StepInput> for StepContext {
    fn from(input: StepInput) -> Self {
        StepContext {
            run_id: input.run_id,
            pipeline: input.pipeline,
            stage: input.stage,
            step: input.step,
            workdir: PathBuf::from(input.workdir),
            attempt: input.attempt,
            artifact: input.artifact,
            outputs: input.outputs,
            plugins: input.plugins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_outputs_by_step_and_name() {
        let ctx = StepContext::from(StepInput {
            run_id: "r".into(),
            pipeline: "p".into(),
            stage: "s".into(),
            step: "t".into(),
            config: "{}".into(),
            artifact: None,
            outputs: vec![
                StepOutput {
                    step: "a".into(),
                    name: "x".into(),
                    value: "1".into(),
                },
                StepOutput {
                    step: "b".into(),
                    name: "x".into(),
                    value: "2".into(),
                },
            ],
            workdir: "/w".into(),
            attempt: 2,
            plugins: vec![],
        });
        assert_eq!(ctx.output("b", "x"), Some("2"));
        assert_eq!(ctx.output("a", "y"), None);
        assert!(ctx.is_retry());
        assert_eq!(ctx.resolve("src/main.rs"), PathBuf::from("/w/src/main.rs"));
        assert_eq!(ctx.resolve("/etc/hosts"), PathBuf::from("/etc/hosts"));
    }
}
