//! containerd's config file (TOML): reading the CRI facts it sets, the built-in defaults for those it does not,
//! and setting the sandbox image with every other byte left as it was.
//!
//! Where the facts live, by the file's `version` (a file without one is version 1):
//! - 1 (containerd 1.x; 2.x migrates it): `[plugins.cri] sandbox_image`, `[plugins.cri.cni] bin_dir, conf_dir`.
//! - 2 (containerd 1.x; 2.x migrates it): the same under `[plugins."io.containerd.grpc.v1.cri"]`.
//! - 3 (containerd 2.x only): `[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox`,
//!   `[plugins.'io.containerd.cri.v1.runtime'.cni] bin_dirs (2.1+; bin_dir before), conf_dir`.
//!
//! Files pulled in with `imports = [...]` are not read.

use super::{Fact, RuntimeError, RuntimeInfo, Source};
use crate::layout::Os;
use toml_edit::{DocumentMut, Item, Table, Value};

const V1_CRI: &[&str] = &["plugins", "cri"];
const V2_CRI: &[&str] = &["plugins", "io.containerd.grpc.v1.cri"];
const V3_RUNTIME: &[&str] = &["plugins", "io.containerd.cri.v1.runtime"];
const V3_PINNED: &[&str] = &["plugins", "io.containerd.cri.v1.images", "pinned_images"];

/// Fills the facts the CRI did not give from the runtime's config file text (containerd TOML, config `version`
/// 1, 2 and 3); facts the file does not set either get containerd's built-in default for `os` with
/// [`Source::Default`]:
/// - CNI config dir: `/etc/cni/net.d`; Windows `C:\Program Files\containerd\cni\conf`.
/// - CNI plugin dir: `/opt/cni/bin`; Windows `C:\Program Files\containerd\cni\bin`.
/// - max_conf_num: 1.
/// - sandbox image: by containerd version (the same on both OSes): 1.5 `pause:3.5`, 1.6 `pause:3.6`,
///   1.7 `pause:3.8`, 2.0–2.1 `pause:3.10`, 2.2 `pause:3.10.1`, 2.3 `pause:3.10.2`, from `k8s.gcr.io` before
///   1.5.14 / 1.6.9 and `registry.k8s.io` after. None when the version is unknown.
///
/// The defaults are containerd's: a runtime that says it is something else gets none. `text` None means the
/// file does not exist.
pub fn fill_from_config(info: &mut RuntimeInfo, path: &str, text: Option<&str>, os: Os) -> Result<(), RuntimeError> {
    let from_file = match text {
        Some(text) => Some(read_config(path, text)?),
        None => None,
    };
    let file = from_file.unwrap_or_default();
    let source = || Source::ConfigFile(path.to_string());
    let is_containerd = info.name.is_empty() || info.name.eq_ignore_ascii_case("containerd");
    let version = info.version_triple();

    if info.cni_conf_dir.is_none() {
        info.cni_conf_dir = file.conf_dir.map(|v| Fact::new(v, source())).or_else(|| {
            is_containerd.then(|| Fact::new(default_cni_dir(os, "conf", "/etc/cni/net.d"), Source::Default))
        });
    }
    if info.cni_bin_dir.is_none() {
        info.cni_bin_dir = file
            .bin_dir
            .map(|v| Fact::new(v, source()))
            .or_else(|| is_containerd.then(|| Fact::new(default_cni_dir(os, "bin", "/opt/cni/bin"), Source::Default)));
    }
    if info.sandbox_image.is_none() {
        info.sandbox_image = file.sandbox_image.map(|v| Fact::new(v, source())).or_else(|| {
            let default = version.filter(|_| is_containerd).and_then(default_sandbox_image)?;
            Some(Fact::new(default.to_string(), Source::Default))
        });
    }
    if info.cni_max_conf_num.is_none() {
        info.cni_max_conf_num = file.max_conf_num.or(is_containerd.then_some(1));
    }
    Ok(())
}

fn default_cni_dir(os: Os, leaf: &str, linux: &str) -> String {
    match os {
        Os::Linux => linux.to_string(),
        // filepath.Join(os.Getenv("ProgramFiles"), "containerd", "cni", leaf)
        Os::Windows => format!(r"C:\Program Files\containerd\cni\{leaf}"),
    }
}

/// containerd's built-in `sandbox_image` / `pinned_images.sandbox` for a version (from its
/// `pkg/cri/config/config_{unix,windows}.go`, `internal/cri/config/config.go` in 2.x).
fn default_sandbox_image((major, minor, patch): (u32, u32, u32)) -> Option<&'static str> {
    Some(match (major, minor) {
        (1, 5) if patch < 14 => "k8s.gcr.io/pause:3.5",
        (1, 5) => "registry.k8s.io/pause:3.5",
        (1, 6) if patch < 9 => "k8s.gcr.io/pause:3.6",
        (1, 6) => "registry.k8s.io/pause:3.6",
        (1, 7) => "registry.k8s.io/pause:3.8",
        (2, 0 | 1) => "registry.k8s.io/pause:3.10",
        (2, 2) => "registry.k8s.io/pause:3.10.1",
        (2, 3..) => "registry.k8s.io/pause:3.10.2",
        _ => return None,
    })
}

/// The CRI facts a config file sets.
#[derive(Debug, Default)]
struct FileFacts {
    conf_dir: Option<String>,
    bin_dir: Option<String>,
    sandbox_image: Option<String>,
    max_conf_num: Option<u32>,
}

fn parse(file: &str, text: &str) -> Result<DocumentMut, RuntimeError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
        let line = text.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        RuntimeError::ConfigToml {
            file: file.to_string(),
            message: format!("line {line}: {}", e.message().trim().replace('\n', "; ")),
        }
    })
}

/// The file's `version`; 1 when absent, as containerd reads it.
fn config_version(file: &str, doc: &DocumentMut) -> Result<i64, RuntimeError> {
    match doc.get("version") {
        None => Ok(1),
        Some(item) => match item.as_integer() {
            Some(v @ 1..=3) => Ok(v),
            Some(v) => Err(RuntimeError::ConfigVersion { file: file.to_string(), version: v }),
            None => Err(shape(file, "version", item, "an integer")),
        },
    }
}

fn shape(file: &str, key: &str, found: &Item, expected: &'static str) -> RuntimeError {
    let found = match found {
        Item::None => "missing".to_string(),
        Item::Value(v) => {
            let kind = v.type_name();
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            format!("{article} {kind} ({})", v.to_string().trim())
        }
        Item::Table(_) => "a table".to_string(),
        Item::ArrayOfTables(_) => "an array of tables".to_string(),
    };
    RuntimeError::ConfigShape { file: file.to_string(), key: key.to_string(), found, expected }
}

/// The item at `path` (tables, dotted keys and inline tables alike), if every step exists.
fn lookup<'a>(doc: &'a DocumentMut, path: &[&str]) -> Option<&'a Item> {
    path.iter().try_fold(doc.as_item(), |item, key| item.get(key))
}

/// A string at `path`: None when absent or empty, an error when it is not a string.
fn string_at(file: &str, doc: &DocumentMut, path: &[&str]) -> Result<Option<String>, RuntimeError> {
    match lookup(doc, path) {
        None => Ok(None),
        Some(item) => match item.as_str() {
            Some(s) => Ok(Some(s.to_string()).filter(|s| !s.is_empty())),
            None => Err(shape(file, &path.join("."), item, "a string")),
        },
    }
}

fn read_config(file: &str, text: &str) -> Result<FileFacts, RuntimeError> {
    let doc = parse(file, text)?;
    let version = config_version(file, &doc)?;
    let join = |base: &[&'static str], rest: &[&'static str]| [base, rest].concat();
    let (cni, sandbox): (Vec<&str>, Vec<&str>) = match version {
        1 => (join(V1_CRI, &["cni"]), join(V1_CRI, &["sandbox_image"])),
        2 => (join(V2_CRI, &["cni"]), join(V2_CRI, &["sandbox_image"])),
        _ => (join(V3_RUNTIME, &["cni"]), join(V3_PINNED, &["sandbox"])),
    };
    let bin_dirs_path = join(&cni, &["bin_dirs"]);
    let bin_dirs = match lookup(&doc, &bin_dirs_path) {
        None => None,
        Some(item) => match item.as_array() {
            Some(a) => a.get(0).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
            None => return Err(shape(file, &bin_dirs_path.join("."), item, "an array of strings")),
        },
    };
    let max_path = join(&cni, &["max_conf_num"]);
    let max_conf_num = match lookup(&doc, &max_path) {
        None => None,
        Some(item) => match item.as_integer().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => return Err(shape(file, &max_path.join("."), item, "a non-negative integer")),
        },
    };
    Ok(FileFacts {
        conf_dir: string_at(file, &doc, &join(&cni, &["conf_dir"]))?,
        bin_dir: string_at(file, &doc, &join(&cni, &["bin_dir"]))?.or(bin_dirs),
        sandbox_image: string_at(file, &doc, &sandbox)?,
        max_conf_num,
    })
}

/// The config file's text with the CRI sandbox image set to `image` (everything else byte-for-byte unchanged),
/// for config version 1 (`[plugins.cri] sandbox_image`), 2 (`[plugins."io.containerd.grpc.v1.cri"]
/// sandbox_image`) and 3 (`[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox`); `None` text = no
/// file yet: a minimal valid file setting only that, version 2 for containerd 1.x (`runtime_major` 1) and 3
/// for 2.x.
pub fn set_sandbox_image(text: Option<&str>, image: &str, runtime_major: u32) -> Result<String, RuntimeError> {
    const FILE: &str = "the containerd config";
    let text = match text {
        Some(t) => t.to_string(),
        None if runtime_major >= 2 => "version = 3\n".to_string(),
        None => "version = 2\n".to_string(),
    };
    let mut doc = parse(FILE, &text)?;
    let (table, key): (&[&str], &str) = match config_version(FILE, &doc)? {
        1 => (V1_CRI, "sandbox_image"),
        2 => (V2_CRI, "sandbox_image"),
        _ if runtime_major < 2 => return Err(RuntimeError::ConfigTooNew { file: FILE.into(), runtime_major }),
        _ => (V3_PINNED, "sandbox"),
    };
    let parent_item = table_mut(FILE, &mut doc, table)?;
    if let Some(t) = parent_item.as_table_mut().filter(|t| !t.contains_key(key)) {
        // A new line, indented like the table's last key (comments before that key are not copied).
        let indent = t
            .iter()
            .filter(|(_, item)| item.is_value())
            .last()
            .and_then(|(k, _)| t.key(k)?.leaf_decor().prefix()?.as_str())
            .map(|p| p.rsplit('\n').next().unwrap_or_default().to_string())
            .filter(|p| p.chars().all(|c| c == ' ' || c == '\t'));
        let mut k = toml_edit::Key::new(key);
        if let Some(indent) = indent {
            k.leaf_decor_mut().set_prefix(indent);
        }
        t.insert_formatted(&k, toml_edit::value(image));
        return Ok(doc.to_string());
    }
    let parent = parent_item.as_table_like_mut().expect("table_mut returns tables");
    match parent.get_mut(key) {
        Some(Item::Value(old)) => {
            // Keep the spacing and any comment after the old value.
            let decor = old.decor().clone();
            *old = Value::from(image);
            *old.decor_mut() = decor;
        }
        Some(other) => {
            return Err(shape(FILE, &[table, &[key]].concat().join("."), other, "a string"));
        }
        None => {
            parent.insert(key, toml_edit::value(image));
        }
    }
    Ok(doc.to_string())
}

/// The table at `path`, creating the missing ones (implicit, so no empty `[plugins]` header appears).
fn table_mut<'a>(file: &str, doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut Item, RuntimeError> {
    let mut item = doc.as_item_mut();
    for (i, key) in path.iter().enumerate() {
        let inline = item.is_inline_table();
        let Some(table) = item.as_table_like_mut() else {
            unreachable!("every step is checked to be a table before descending")
        };
        if table.get(key).is_none() {
            let new = if inline {
                Item::Value(Value::InlineTable(toml_edit::InlineTable::new()))
            } else {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            };
            table.insert(key, new);
        }
        let next = table.get_mut(key).expect("just inserted");
        if !next.is_table_like() {
            return Err(shape(file, &path[..=i].join("."), next, "a table"));
        }
        item = next;
    }
    Ok(item)
}
