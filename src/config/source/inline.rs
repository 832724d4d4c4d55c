//! Reading the files a kubeconfig refers to (relative to the kubeconfig, as kubectl does), or decoding their
//! inline `-data` form, so the node's copy needs none of them.

use super::SourceError;
use base64::Engine;
use std::path::{Path, PathBuf};

pub(super) struct Inliner<'a> {
    pub(super) origin: &'a str,
    pub(super) base: &'a Path,
}

impl Inliner<'_> {
    fn path(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    pub(super) fn read(&self, what: &'static str, file: &str) -> Result<String, SourceError> {
        let path = self.path(file);
        std::fs::read_to_string(&path).map_err(|source| SourceError::ReadReferenced {
            origin: self.origin.to_string(),
            what,
            path,
            source,
        })
    }

    /// `<what>-data` (base64) wins over `<what>` (a file), as in kubectl.
    pub(super) fn data_or_file(
        &self,
        what: &'static str,
        data: Option<&str>,
        file: Option<&str>,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        if let Some(d) = data.filter(|d| !d.trim().is_empty()) {
            let compact: String = d.split_whitespace().collect();
            return base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(Some)
                .map_err(|e| SourceError::Base64 { origin: self.origin.to_string(), what, message: e.to_string() });
        }
        match file.filter(|f| !f.is_empty()) {
            Some(f) => {
                let path = self.path(f);
                std::fs::read(&path).map(Some).map_err(|source| SourceError::ReadReferenced {
                    origin: self.origin.to_string(),
                    what,
                    path,
                    source,
                })
            }
            None => Ok(None),
        }
    }
}
