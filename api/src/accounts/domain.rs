//! Validated account inputs: once parsed, an e-mail or password is known good.
use crate::{auth::password::PASSWORD_LEN, error::AppError};
use secrecy::SecretString;

/// A syntactically valid e-mail address in its one normal form: lower-cased, Unicode
/// NFC, the domain in IDNA ASCII (`migration::normalize::email_address`), so the same
/// address typed in NFC or NFD, or with a Unicode domain, is one account. Every entry
/// point (register, login, password reset, the admin CLI) parses through here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses user input for `field`.
    ///
    /// Errors: BAD_USER_INPUT naming `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, AppError> {
        if raw.trim().len() > 254 {
            return Err(AppError::bad_input(field, "is longer than 254 characters"));
        }
        let invalid = || AppError::bad_input(field, "is not a valid e-mail address");
        let normal = migration::normalize::email_address(raw).ok_or_else(invalid)?;
        if normal.len() > 254 {
            return Err(AppError::bad_input(field, "is longer than 254 characters"));
        }
        let domain = normal.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        if !email_address::EmailAddress::is_valid(&normal) || !domain.contains('.') {
            return Err(invalid());
        }
        Ok(EmailAddress(normal))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the length policy. Never printed.
pub struct NewPassword(pub SecretString);

impl NewPassword {
    /// Checks a chosen password for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, AppError> {
        let chars = raw.chars().count();
        if chars < *PASSWORD_LEN.start() {
            return Err(AppError::bad_input(field, format!("must be at least {} characters", PASSWORD_LEN.start())));
        }
        if chars > *PASSWORD_LEN.end() {
            return Err(AppError::bad_input(field, format!("must be at most {} characters", PASSWORD_LEN.end())));
        }
        if raw.trim().is_empty() {
            return Err(AppError::bad_input(field, "must not be blank"));
        }
        Ok(NewPassword(SecretString::from(raw.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(EmailAddress::parse("email", " Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@localhost", "a b@example.com"] {
            assert!(EmailAddress::parse("email", bad).is_err(), "{bad}");
        }
        assert_eq!(
            EmailAddress::parse("email", "Jose\u{301}@B\u{fc}cher.Example").unwrap().as_str(),
            "jos\u{e9}@xn--bcher-kva.example"
        );
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse("email", &long).is_err());
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(NewPassword::parse("password", "short").is_err());
        assert!(NewPassword::parse("password", &"x".repeat(129)).is_err());
        assert!(NewPassword::parse("password", "          ").is_err());
        assert!(NewPassword::parse("password", "long enough").is_ok());
    }
}
