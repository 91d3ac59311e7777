//! Opaque secrets handed to clients (refresh tokens, e-mail links). Each carries the
//! id of the account it belongs to, so the server can switch the transaction to that
//! account and look the secret's hash up under row-level security: no cross-tenant
//! lookup is needed, and a forged account id finds nothing.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What an opaque token is for; the prefix keeps one kind from being used as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Refresh token of a session.
    Refresh,
    /// E-mail verification link.
    VerifyEmail,
    /// Password reset link.
    ResetPassword,
    /// Confirms a new address for the account (sent to that address).
    ChangeEmail,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Refresh => "plr_",
            Kind::VerifyEmail => "plv_",
            Kind::ResetPassword => "plp_",
            Kind::ChangeEmail => "plc_",
        }
    }
}

/// A parsed token: the account it names and the hash to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opaque {
    /// The account the token claims to belong to (unverified until the hash is found).
    pub user_id: Uuid,
    /// SHA-256 of the whole token; only this is stored.
    pub hash: Vec<u8>,
}

/// Generates a token of `kind` for `user_id`: the string for the client and its parse.
pub fn generate(kind: Kind, user_id: Uuid) -> (String, Opaque) {
    let mut raw = [0u8; 48];
    raw[..16].copy_from_slice(user_id.as_bytes());
    rand::rngs::OsRng.fill_bytes(&mut raw[16..]);
    let token = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(raw));
    let parsed = Opaque { user_id, hash: digest(&token) };
    (token, parsed)
}

/// Parses a token of `kind`; None for anything malformed.
pub fn parse(kind: Kind, token: &str) -> Option<Opaque> {
    let body = token.strip_prefix(kind.prefix())?;
    if body.len() != 64 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
    let user_id = Uuid::from_slice(raw.get(..16)?).ok()?;
    Some(Opaque { user_id, hash: digest(token) })
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_kinds_and_garbage() {
        let user = Uuid::new_v4();
        let (token, parsed) = generate(Kind::Refresh, user);
        assert_eq!(parse(Kind::Refresh, &token), Some(parsed));
        assert_eq!(parse(Kind::VerifyEmail, &token), None);
        assert_eq!(parse(Kind::Refresh, "plr_short"), None);
        assert_eq!(parse(Kind::Refresh, ""), None);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push('A');
        if tampered != token {
            assert_ne!(parse(Kind::Refresh, &tampered).map(|o| o.hash), Some(digest(&token)));
        }
    }
}
