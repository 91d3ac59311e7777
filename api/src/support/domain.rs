//! Support's vocabulary and the checks its input passes before it reaches a table:
//! ticket statuses, categories and priorities, subjects and message bodies, and the
//! Markdown renderer (sanitized, so a message can never carry script into a page).
use crate::{error::AppError, model::vocabulary};
use async_graphql::Enum;

vocabulary! {
    /// Where a ticket stands.
    #[derive(Enum)]
    pub enum TicketStatus as "ticket status" {
        /// Waiting for support.
        Open = "open",
        /// Waiting for the user.
        Pending = "pending",
        /// Support considers it solved; the user may reopen it.
        Resolved = "resolved",
        /// Closed by the user or support.
        Closed = "closed",
    }
}

vocabulary! {
    /// What a ticket is about.
    #[derive(Enum)]
    pub enum TicketCategory as "ticket category" {
        /// Plans, invoices, payments.
        Billing = "billing",
        /// Scans, preparations, publications.
        Jobs = "jobs",
        /// Sign-in, profile, data.
        Account = "account",
        /// Connected marketplace accounts.
        Marketplace = "marketplace",
        /// Anything else.
        Other = "other",
    }
}

vocabulary! {
    /// How urgent a ticket is.
    #[derive(Enum)]
    pub enum TicketPriority as "ticket priority" {
        /// Whenever.
        Low = "low",
        /// The default.
        Normal = "normal",
        /// Soon.
        High = "high",
        /// Now.
        Urgent = "urgent",
    }
}

impl TicketStatus {
    /// Whether the ticket counts against the user's open-ticket limit.
    pub fn is_open(self) -> bool {
        matches!(self, TicketStatus::Open | TicketStatus::Pending)
    }
}

/// Longest subject, in characters.
pub const SUBJECT_MAX: usize = 200;
/// Longest message body, in characters.
pub const BODY_MAX: usize = 10_000;

/// A ticket's subject: trimmed, 1 to `SUBJECT_MAX` characters, one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// Errors: BAD_USER_INPUT on `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, AppError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > SUBJECT_MAX {
            return Err(AppError::bad_input(field, format!("must be 1 to {SUBJECT_MAX} characters")));
        }
        if s.chars().any(char::is_control) {
            return Err(AppError::bad_input(field, "must be one line without control characters"));
        }
        Ok(Subject(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message body (Markdown): trimmed, 1 to `BODY_MAX` characters, no control
/// characters but line breaks and tabs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    /// Errors: BAD_USER_INPUT on `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, AppError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > BODY_MAX {
            return Err(AppError::bad_input(field, format!("must be 1 to {BODY_MAX} characters")));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            return Err(AppError::bad_input(field, "must not contain control characters"));
        }
        Ok(Body(s.to_owned()))
    }

    /// The Markdown as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Markdown to HTML that is safe to put in a page: CommonMark (with tables and
/// strikethrough) rendered by pulldown-cmark, then cleaned by ammonia's allow-list
/// (no script, no event handlers, no `javascript:` links; links get
/// `rel="noopener noreferrer"`). Raw HTML in the source is sanitized like the rest.
pub fn render_markdown(markdown: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default().link_rel(Some("noopener noreferrer")).clean(&unsafe_html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_sanitized() {
        let html =
            render_markdown("**hi** [x](javascript:alert(1)) <script>alert(1)</script> <img src=x onerror=alert(1)>");
        assert!(html.contains("<strong>hi</strong>"), "{html}");
        assert!(!html.contains("script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        let link = render_markdown("[docs](https://example.com)");
        assert!(link.contains("rel=\"noopener noreferrer\""), "{link}");
    }

    #[test]
    fn subjects_and_bodies_are_bounded() {
        assert!(Subject::parse("subject", "  ").is_err());
        assert!(Subject::parse("subject", &"x".repeat(201)).is_err());
        assert!(Subject::parse("subject", "a\nb").is_err());
        assert_eq!(Subject::parse("subject", " Help ").unwrap().as_str(), "Help");
        assert!(Body::parse("body", &"x".repeat(10_001)).is_err());
        assert!(Body::parse("body", "line\nline").is_ok());
        assert!(Body::parse("body", "bell\u{7}").is_err());
    }
}
