//! The one normalization of e-mail addresses, used by every entry point (through
//! `api::accounts::domain::EmailAddress`) and by the migration that normalized the rows
//! stored before it: the same address in NFC and NFD, in upper and lower case, or with
//! a Unicode or Punycode domain is one address.
use unicode_normalization::UnicodeNormalization;

/// `raw` trimmed, lower-cased and in Unicode NFC, its domain converted through IDNA
/// (UTS #46) to ASCII; None when it has no `@` or its domain is not a valid IDNA name.
/// Syntax beyond that is checked by the caller.
pub fn email_address(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let (local, domain) = trimmed.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let local: String = local.nfc().collect::<String>().to_lowercase().nfc().collect();
    let domain = idna::domain_to_ascii(domain).ok()?;
    if domain.is_empty() {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::email_address;

    #[test]
    fn one_address_one_spelling() {
        let nfc = "jos\u{e9}@example.com";
        let nfd = "jose\u{301}@example.com";
        assert_eq!(email_address(nfd).as_deref(), Some(nfc));
        assert_eq!(email_address(" JOS\u{c9}@Example.COM ").as_deref(), Some(nfc));
        assert_eq!(email_address("ann@B\u{fc}cher.example").as_deref(), Some("ann@xn--bcher-kva.example"));
        assert_eq!(email_address("ann@bu\u{308}cher.example").as_deref(), Some("ann@xn--bcher-kva.example"));
        assert_eq!(email_address("ann@XN--BCHER-KVA.example").as_deref(), Some("ann@xn--bcher-kva.example"));
        for bad in ["", "ann", "@example.com", "ann@"] {
            assert_eq!(email_address(bad), None, "{bad}");
        }
    }
}
