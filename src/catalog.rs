//! The models shipped in `models/`: each `<name>.onnx` (fp32), an optional `<name>.fp16.onnx`
//! and its model card `<name>.md`.

use std::path::{Path, PathBuf};

/// The style used when no model is given.
pub const DEFAULT_MODEL: &str = "starry_night";

/// The shipped models' directory: `$STYLIZE_MODELS_DIR`, else `models/` in the source tree.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("STYLIZE_MODELS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
    }
}

/// A shipped model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedModel {
    /// Style name (file stem).
    pub name: String,
    /// The fp32 model.
    pub path: PathBuf,
    /// The fp16 variant, if shipped.
    pub fp16: Option<PathBuf>,
    /// The model card, if any.
    pub card: Option<PathBuf>,
    /// Size of the fp32 file in bytes.
    pub bytes: u64,
    /// Whether this is [`DEFAULT_MODEL`].
    pub is_default: bool,
}

impl ShippedModel {
    /// The card's first non-heading paragraph line, as a one-line summary.
    pub fn summary(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.card.as_ref()?).ok()?;
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .map(str::to_string)
    }
}

/// The models in `dir`, sorted by name.
pub fn list_in(dir: &Path) -> std::io::Result<Vec<ShippedModel>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(name) = file.strip_suffix(".onnx").map(str::to_string) else {
            continue;
        };
        if name.ends_with(".fp16") {
            continue;
        }
        let fp16 = dir.join(format!("{name}.fp16.onnx"));
        let card = dir.join(format!("{name}.md"));
        out.push(ShippedModel {
            is_default: name == DEFAULT_MODEL,
            name,
            bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            path,
            fp16: fp16.exists().then_some(fp16),
            card: card.exists().then_some(card),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The shipped models.
pub fn list() -> std::io::Result<Vec<ShippedModel>> {
    list_in(&models_dir())
}

/// The default model's path, if it is shipped.
pub fn default_model() -> Option<PathBuf> {
    let p = models_dir().join(format!("{DEFAULT_MODEL}.onnx"));
    p.exists().then_some(p)
}

/// A `--model` argument as a path: an existing path as is; otherwise a bare style name
/// (`wave_crop`) that names a shipped model.
pub fn resolve(arg: &str) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.exists() || arg.contains('/') || arg.ends_with(".onnx") {
        return p;
    }
    let shipped = models_dir().join(format!("{arg}.onnx"));
    if shipped.exists() { shipped } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_models_with_cards_and_variants() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b.onnx", "b.fp16.onnx", "b.md", "a.onnx", "notes.txt"] {
            std::fs::write(d.path().join(f), "# Title\n\nA style.\n").unwrap();
        }
        let m = list_in(d.path()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "a");
        assert!(m[0].card.is_none() && m[0].fp16.is_none());
        assert_eq!(m[1].name, "b");
        assert!(m[1].fp16.is_some());
        assert_eq!(m[1].summary().as_deref(), Some("A style."));
    }
}
