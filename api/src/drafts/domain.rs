//! Validated draft fields. Each parse names the input field at fault, and a draft
//! change is checked whole before anything is written.
use crate::{error::AppError, model::vocabulary};
use async_graphql::Enum;

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 5_000;
/// Highest price, in cents (one million in the currency).
pub const PRICE_MAX_CENTS: i64 = 100_000_000;
/// Currencies a listing may be priced in.
pub const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF", "PLN", "SEK", "DKK", "CZK", "RON", "HUF"];

vocabulary! {
    /// A draft's lifecycle.
    #[derive(Enum)]
    pub enum DraftStatus as "draft status" {
        /// Being edited.
        Draft = "draft",
        /// Complete, may be published.
        Ready = "ready",
        /// Published to a marketplace.
        Published = "published",
        /// Kept but hidden.
        Archived = "archived",
    }
}

vocabulary! {
    /// An item's condition.
    #[derive(Enum)]
    #[graphql(name = "ItemCondition")]
    pub enum Condition as "item condition" {
        /// New, tags attached.
        NewWithTags = "new_with_tags",
        /// New, no tags.
        NewWithoutTags = "new_without_tags",
        /// Barely worn.
        VeryGood = "very_good",
        /// Worn, well kept.
        Good = "good",
        /// Visibly worn.
        Satisfactory = "satisfactory",
    }
}

/// A change to one field: absent leaves it, null clears it, a value sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not mentioned.
    #[default]
    Keep,
    /// Set to null.
    Clear,
    /// Set to this value.
    Set(T),
}

impl<T> Patch<T> {
    /// Maps the value of `Set`, failing like `f` does.
    ///
    /// Errors: those of `f`.
    pub fn try_map<U>(self, f: impl FnOnce(T) -> Result<U, AppError>) -> Result<Patch<U>, AppError> {
        Ok(match self {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)?),
        })
    }
}

/// The fields of a draft a client may write, already validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DraftFields {
    /// Title (required on create).
    pub title: Option<String>,
    /// Description (empty when cleared).
    pub description: Option<String>,
    /// Price in cents.
    pub price_cents: Patch<i64>,
    /// ISO currency.
    pub currency: Option<String>,
    /// Brand.
    pub brand: Patch<String>,
    /// Size label.
    pub size: Patch<String>,
    /// Condition.
    pub condition: Patch<Condition>,
    /// Category path.
    pub category: Patch<String>,
    /// Status.
    pub status: Option<DraftStatus>,
}

/// Trims and checks a required text field.
///
/// Errors: BAD_USER_INPUT naming `field` (empty, too long, control characters).
pub fn title(field: &str, raw: &str) -> Result<String, AppError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(AppError::bad_input(field, "must not be empty"));
    }
    bounded(field, t, TITLE_MAX)
}

/// Checks a description.
///
/// Errors: BAD_USER_INPUT naming `field` (too long, control characters).
pub fn description(field: &str, raw: &str) -> Result<String, AppError> {
    bounded(field, raw.trim(), DESCRIPTION_MAX)
}

/// Checks a short optional label (brand, size, category).
///
/// Errors: BAD_USER_INPUT naming `field` (empty, too long, control characters).
pub fn label(field: &str, raw: &str, max: usize) -> Result<String, AppError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(AppError::bad_input(field, "must not be empty; send null to clear it"));
    }
    bounded(field, t, max)
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    if value.chars().count() > max {
        return Err(AppError::bad_input(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(AppError::bad_input(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// Checks a price in cents.
///
/// Errors: BAD_USER_INPUT naming `field`.
pub fn price_cents(field: &str, cents: i64) -> Result<i64, AppError> {
    if !(0..=PRICE_MAX_CENTS).contains(&cents) {
        return Err(AppError::bad_input(field, format!("must be between 0 and {PRICE_MAX_CENTS}")));
    }
    Ok(cents)
}

/// Checks an ISO 4217 currency code against the supported list.
///
/// Errors: BAD_USER_INPUT naming `field`.
pub fn currency(field: &str, raw: &str) -> Result<String, AppError> {
    let c = raw.trim().to_ascii_uppercase();
    if !CURRENCIES.contains(&c.as_str()) {
        return Err(AppError::bad_input(field, format!("must be one of {}", CURRENCIES.join(", "))));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded_and_named() {
        assert_eq!(title("input.title", "  Jacket ").unwrap(), "Jacket");
        let e = title("input.title", "   ").unwrap_err();
        assert!(matches!(e, AppError::BadUserInput { ref field, .. } if field == "input.title"));
        assert!(title("t", &"x".repeat(201)).is_err());
        assert!(title("t", &"é".repeat(200)).is_ok());
        assert!(description("d", &"x".repeat(5001)).is_err());
        assert!(title("t", "bell\u{7}").is_err());
        assert!(price_cents("p", -1).is_err());
        assert!(price_cents("p", PRICE_MAX_CENTS + 1).is_err());
        assert_eq!(currency("c", "eur").unwrap(), "EUR");
        assert!(currency("c", "XXX").is_err());
        assert!(DraftStatus::parse("nope").is_err());
        assert_eq!(Condition::parse("good"), Ok(Condition::Good));
    }
}
