//! Sealing secrets at rest with AES-256-GCM. The associated data binds a ciphertext to
//! its row, so a sealed value copied to another row (or tenant) does not open.
use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use anyhow::Context;
use rand::RngCore;
use std::path::Path;

/// A 256-bit key; never printed.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// A MAC key derived from the same key (signed links in e-mails).
    mac: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A key from 64 hex digits.
    ///
    /// Errors: not 64 hex digits.
    pub fn from_hex(hex_key: &str) -> anyhow::Result<Self> {
        // hex's own error names the offending character: a piece of the key, not shown.
        let bytes = hex::decode(hex_key.trim())
            .map_err(|_| anyhow::anyhow!("expected 64 hex digits, found a non-hex character or an odd count"))?;
        anyhow::ensure!(bytes.len() == 32, "expected 64 hex digits (32 bytes), found {}", hex_key.trim().len());
        let mac = {
            use hmac::Mac;
            let mut m = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&bytes).context("MAC key")?;
            m.update(b"plinth signed links v1");
            m.finalize().into_bytes().into()
        };
        Ok(SecretBox { cipher: Aes256Gcm::new_from_slice(&bytes).context("AES key")?, mac })
    }

    /// The key kept in `path`, generated on first use (development only).
    ///
    /// Errors: the key file cannot be read, parsed or written.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if let Ok(existing) = std::fs::read_to_string(path) {
            return Self::from_hex(&existing).with_context(|| format!("reading {}", path.display()));
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        crate::fsutil::write_private(path, hex::encode(key).as_bytes())?;
        Self::from_hex(&hex::encode(key))
    }

    /// Random key bytes kept in `path` (created on first use), e.g. for URL signing.
    ///
    /// Errors: the key file cannot be read, parsed or written.
    pub fn key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
        if let Ok(existing) = std::fs::read_to_string(path) {
            return hex::decode(existing.trim()).with_context(|| format!("reading {}", path.display()));
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        crate::fsutil::write_private(path, hex::encode(key).as_bytes())?;
        Ok(key.to_vec())
    }

    /// A signature of `message` (HMAC-SHA256 under a key derived from this box's, 128
    /// bits, hex): for links that must work without signing in.
    pub fn sign(&self, message: &[u8]) -> String {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.mac).expect("any key length");
        m.update(message);
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// Whether `signature` is [`SecretBox::sign`]'s for `message` (constant time).
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        use hmac::Mac;
        let Ok(given) = hex::decode(signature) else { return false };
        let mut m = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.mac).expect("any key length");
        m.update(message);
        m.verify_truncated_left(&given).is_ok() && given.len() == 16
    }

    /// Encrypts `plaintext` bound to `aad`: 12-byte random nonce, then ciphertext.
    ///
    /// Errors: INTERNAL (encryption failed).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    /// Decrypts what `seal` produced with the same `aad`.
    ///
    /// Errors: INTERNAL (tampered, or sealed with another key or for another row).
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > 12, "sealed value too short");
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().context("nonce")?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
            .map_err(|_| anyhow::anyhow!("opening failed: wrong key or associated data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_row() {
        let b = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        let sealed = b.seal(b"password=hunter2", b"row-1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open(&sealed, b"row-1").unwrap(), b"password=hunter2");
        assert!(b.open(&sealed, b"row-2").is_err());
        assert!(SecretBox::from_hex(&"22".repeat(32)).unwrap().open(&sealed, b"row-1").is_err());
        assert!(SecretBox::from_hex("abcd").is_err());
        // The error never carries a piece of the key.
        let e = format!("{:#}", SecretBox::from_hex(&format!("{}q{}", "1".repeat(40), "1".repeat(23))).err().unwrap());
        assert!(!e.contains('q'), "{e}");
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let b = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        let sig = b.sign(b"unsubscribe:1:onboarding");
        assert!(b.verify(b"unsubscribe:1:onboarding", &sig));
        assert!(!b.verify(b"unsubscribe:2:onboarding", &sig));
        assert!(!b.verify(b"unsubscribe:1:onboarding", &sig[..16]));
        assert!(!b.verify(b"unsubscribe:1:onboarding", "zz"));
        assert!(!SecretBox::from_hex(&"22".repeat(32)).unwrap().verify(b"unsubscribe:1:onboarding", &sig));
    }
}
