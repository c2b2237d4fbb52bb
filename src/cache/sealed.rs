//! The identity a volume carries for DICOM exports (patient module, study, series and frame
//! UIDs, from `load_dicom`) is stored in cache sidecars only sealed: XChaCha20-Poly1305 under
//! a 256-bit key of this user's, kept outside the cache. A cache on a shared filesystem then
//! holds no identifier in clear; another user (another key) cannot open the seal, and the
//! entry reads as a miss for them, so their run reads the DICOM again.
//!
//! The key: `VISTAFLOW_IDENTITY_KEY` (a file path), else `$XDG_CONFIG_HOME/vistaflow/identity.key`
//! (`~/.config/...`), made on first use with mode 0600.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

const FIELD: &str = "identity";
const SCHEME: &str = "xchacha20poly1305";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot use the identity key `{}`: {msg}", path.display())]
    Key { path: PathBuf, msg: String },
    /// Sealed under another key, or altered.
    #[error("the identity was sealed under another key")]
    Unreadable,
}

/// Replaces `meta.identity` (when present and not null) by its sealed form.
pub fn seal(meta: &mut serde_json::Value) -> Result<(), SealError> {
    let Some(slot) = meta.get_mut(FIELD).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let cipher = cipher()?;
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).map_err(|e| key_error(e.to_string()))?;
    let plain = serde_json::to_vec(slot).expect("JSON serialises");
    let data = cipher
        .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| key_error("encryption failed".into()))?;
    *slot = serde_json::json!({ "sealed": SCHEME, "nonce": hex(&nonce), "data": hex(&data) });
    Ok(())
}

/// Puts back `meta.identity` sealed by [`seal`]; anything else is left as it is.
pub fn unseal(meta: &mut serde_json::Value) -> Result<(), SealError> {
    let Some(slot) = meta.get_mut(FIELD) else {
        return Ok(());
    };
    if slot.get("sealed").and_then(|s| s.as_str()) != Some(SCHEME) {
        return Ok(());
    }
    let field = |k: &str| slot.get(k).and_then(|v| v.as_str()).and_then(unhex);
    let (Some(nonce), Some(data)) = (field("nonce"), field("data")) else {
        return Err(SealError::Unreadable);
    };
    if nonce.len() != 24 {
        return Err(SealError::Unreadable);
    }
    let plain = cipher()?
        .decrypt(XNonce::from_slice(&nonce), data.as_slice())
        .map_err(|_| SealError::Unreadable)?;
    *slot = serde_json::from_slice(&plain).map_err(|_| SealError::Unreadable)?;
    Ok(())
}

fn cipher() -> Result<&'static XChaCha20Poly1305, SealError> {
    static CIPHER: OnceLock<Result<XChaCha20Poly1305, String>> = OnceLock::new();
    CIPHER
        .get_or_init(|| {
            let key = load_or_make_key(&key_path())?;
            Ok(XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"))
        })
        .as_ref()
        .map_err(|msg| key_error(msg.clone()))
}

fn key_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VISTAFLOW_IDENTITY_KEY") {
        return PathBuf::from(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("vistaflow").join("identity.key")
}

fn key_error(msg: String) -> SealError {
    SealError::Key {
        path: key_path(),
        msg,
    }
}

/// Reads the 32-byte key, or makes it: written to a private temp file, then linked into
/// place, so two processes making it at once end with one key.
fn load_or_make_key(path: &PathBuf) -> Result<[u8; 32], String> {
    use std::os::unix::fs::OpenOptionsExt;
    let read = |p: &PathBuf| -> Result<[u8; 32], String> {
        let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
        bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("it holds {} bytes, not 32: remove it", b.len()))
    };
    if path.exists() {
        return read(path);
    }
    let dir = path.parent().expect("a key file has a folder");
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".identity.key.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| e.to_string())?;
    f.write_all(&key)
        .and_then(|_| f.sync_all())
        .map_err(|e| e.to_string())?;
    // hard_link fails when another process made the key first: then use theirs.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e.to_string()),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_is_sealed_and_comes_back_and_other_meta_is_untouched() {
        let identity = json!({"PatientName": "CANARY^SEALED", "StudyInstanceUID": "1.2.3"});
        let mut meta = json!({"affine_lps": [1, 2], "identity": identity.clone()});
        seal(&mut meta).unwrap();
        let text = meta.to_string();
        assert!(
            !text.contains("CANARY") && !text.contains("1.2.3"),
            "{text}"
        );
        assert_eq!(meta["affine_lps"], json!([1, 2]));
        let mut again = json!({"identity": identity.clone()});
        seal(&mut again).unwrap();
        assert_ne!(again, meta, "a fresh nonce per seal");
        unseal(&mut meta).unwrap();
        assert_eq!(meta["identity"], identity);
        // No identity, or a null one: nothing to do either way.
        let mut none = json!({"identity": null});
        seal(&mut none).unwrap();
        assert_eq!(none, json!({"identity": null}));
        unseal(&mut none).unwrap();
    }

    #[test]
    fn an_altered_seal_is_unreadable_not_wrong() {
        let mut meta = json!({"identity": {"PatientID": "X"}});
        seal(&mut meta).unwrap();
        let data = meta["identity"]["data"].as_str().unwrap().to_string();
        let flipped = format!(
            "{}{}",
            if &data[..1] == "0" { "1" } else { "0" },
            &data[1..]
        );
        meta["identity"]["data"] = json!(flipped);
        assert!(matches!(unseal(&mut meta), Err(SealError::Unreadable)));
        let mut short = json!({"identity": {"sealed": SCHEME, "nonce": "00", "data": "00"}});
        assert!(matches!(unseal(&mut short), Err(SealError::Unreadable)));
    }
}
