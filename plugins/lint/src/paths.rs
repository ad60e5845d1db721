//! Turning the paths tools print (absolute, relative to their working folder, or
//! `file://` URIs) into paths relative to the pipeline's folder, as findings need.

use std::path::PathBuf;

/// Where paths are anchored.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The pipeline's folder: finding paths are relative to it.
    pub workdir: PathBuf,
    /// The folder relative paths printed by the tool are relative to (its working
    /// folder, or the Cargo workspace root).
    pub base: PathBuf,
}

impl Anchor {
    /// Anchor for a tool that ran in `base`.
    pub fn new(workdir: impl Into<PathBuf>, base: impl Into<PathBuf>) -> Self {
        Anchor {
            workdir: workdir.into(),
            base: base.into(),
        }
    }

    /// `path` relative to the pipeline's folder when it lies inside it, else absolute.
    pub fn relative(&self, path: &str) -> String {
        let path = path.strip_prefix("file://").unwrap_or(path);
        let path = percent_decode(path);
        let absolute = sluice_sdk::fs::normalize(&self.base.join(&path));
        let workdir = sluice_sdk::fs::normalize(&self.workdir);
        match absolute.strip_prefix(&workdir) {
            Ok(inside) if inside.as_os_str().is_empty() => ".".into(),
            Ok(inside) => inside.to_string_lossy().into_owned(),
            Err(_) => absolute.to_string_lossy().into_owned(),
        }
    }
}

/// Decode `%XX` escapes of a URI path.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[index + 1..index + 3], 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
