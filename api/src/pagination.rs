//! Keyset pagination: pages ordered newest first by (created_at, id), with opaque,
//! stable cursors. A row inserted or deleted between two pages never shifts the next.
use crate::error::AppError;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Largest page a connection returns, whatever `first` asks.
pub const MAX_PAGE: u64 = 100;
/// Page size when `first` is not given.
pub const DEFAULT_PAGE: u64 = 20;

/// A position in a newest-first list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The row's creation time, to the microsecond (Postgres' precision).
    pub created_at: DateTime<Utc>,
    /// The row's id, breaking ties.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at.timestamp_micros(), self.id))
    }

    /// Parses a client's `after`; anything else is BAD_USER_INPUT on `after`.
    ///
    /// Errors: BAD_USER_INPUT on `after`.
    pub fn decode(s: &str) -> Result<Cursor, AppError> {
        let bad = || AppError::bad_input("after", "is not a cursor from this list");
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (micros, id) = text.split_once(':').ok_or_else(bad)?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
        // Rows are created in years 1..=9999; anything outside is no cursor of ours
        // (and PostgreSQL's timestamptz stops at 4713 BC).
        if !(1..=9999).contains(&chrono::Datelike::year(&created_at)) {
            return Err(bad());
        }
        Ok(Cursor { created_at, id: Uuid::parse_str(id).map_err(|_| bad())? })
    }
}

/// The complexity of a connection field asking for `first` rows whose selection costs
/// `child` each: `first` (as capped: 20 when absent, at most 100) × `child`, plus the
/// field itself. Used by every connection field's `complexity` (the schema's limit is
/// `graphql::MAX_COMPLEXITY`).
pub fn page_cost(first: Option<i32>, child: usize) -> usize {
    let rows = first.map_or(DEFAULT_PAGE, |n| (n.max(1) as u64).min(MAX_PAGE));
    (rows as usize).saturating_mul(child).saturating_add(1)
}

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// How many rows to return (1..=MAX_PAGE).
    pub first: u64,
    /// Return rows strictly after this one.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// `first` defaults to 20 and is capped at 100; a negative or zero `first` is refused.
    ///
    /// Errors: BAD_USER_INPUT on `first` (below 1) or `after`.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self, AppError> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if n < 1 => return Err(AppError::bad_input("first", "must be at least 1")),
            Some(n) => (n as u64).min(MAX_PAGE),
        };
        let after = after.map(Cursor::decode).transpose()?;
        Ok(PageRequest { first, after })
    }

    /// The SQL LIMIT: one more than the page, to learn whether another page follows.
    pub fn limit(&self) -> u64 {
        self.first + 1
    }
}

/// A page of rows and whether more follow.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows, newest first.
    pub items: Vec<T>,
    /// Whether a next page exists.
    pub has_next: bool,
}

impl<T> Page<T> {
    /// Cuts the extra row fetched by `limit()`.
    pub fn from_rows(mut rows: Vec<T>, req: &PageRequest) -> Self {
        let has_next = rows.len() as u64 > req.first;
        rows.truncate(req.first as usize);
        Page { items: rows, has_next }
    }
}

impl<T> Page<T> {
    /// The page as a Relay connection: each row's cursor from `cursor`, its node from
    /// `node` (no previous page: lists are read forward only).
    pub fn into_connection<N: async_graphql::OutputType>(
        self,
        cursor: impl Fn(&T) -> Cursor,
        node: impl Fn(T) -> N,
    ) -> async_graphql::connection::Connection<String, N> {
        let mut conn = async_graphql::connection::Connection::new(false, self.has_next);
        conn.edges.extend(
            self.items.into_iter().map(|row| async_graphql::connection::Edge::new(cursor(&row).encode(), node(row))),
        );
        conn
    }
}

/// Rows strictly after `c` in the (created DESC, id DESC) order of columns `created`
/// and `id`: the keyset condition every newest-first list shares.
pub fn after<C: sea_orm::ColumnTrait>(created: C, id: C, c: Cursor) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(created.lt(c.created_at))
        .add(sea_orm::Condition::all().add(created.eq(c.created_at)).add(id.lt(c.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_bad_input() {
        let c =
            Cursor { created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(), id: Uuid::new_v4() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        let id = Uuid::new_v4();
        let before_4713_bc = URL_SAFE_NO_PAD.encode(format!("-210000000000000000:{id}"));
        let year_10000 = URL_SAFE_NO_PAD.encode(format!("253402300800000000:{id}"));
        for bad in ["", "x", "MTIz", &URL_SAFE_NO_PAD.encode("1:not-a-uuid"), &before_4713_bc, &year_10000] {
            assert_eq!(Cursor::decode(bad).unwrap_err().code(), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn first_is_capped_and_checked() {
        assert_eq!(PageRequest::parse(None, None).unwrap().first, 20);
        assert_eq!(PageRequest::parse(Some(1000), None).unwrap().first, 100);
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(-5), None).is_err());
    }
}
