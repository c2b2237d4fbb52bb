//! Deterministic UIDs under the `2.25` root (a UUID-sized integer, PS3.5 B.2).

use sha2::{Digest, Sha256};

/// `2.25.<decimal of the first 128 bits of the digest>`: at most 44 characters.
pub fn from_digest(digest: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A UID for `purpose` (e.g. `"series"`, `"sop"`) derived from a content digest, so that the
/// same content always gets the same UID and different purposes never share one.
pub fn derive(content: &[u8; 32], purpose: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"vistaflow dicom_seg uid\0");
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(content);
    from_digest(&h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_distinct() {
        let c = [7u8; 32];
        let a = derive(&c, "series");
        let b = derive(&c, "sop");
        assert_ne!(a, b);
        assert_eq!(a, derive(&c, "series"));
        for u in [&a, &b] {
            assert!(u.len() <= 64 && u.starts_with("2.25."));
            let n = &u[5..];
            assert!(n.bytes().all(|c| c.is_ascii_digit()) && !n.starts_with('0'));
        }
        assert_eq!(from_digest(&[0u8; 32]), "2.25.0");
    }
}
