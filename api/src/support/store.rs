//! The statements of support's tables. None filters by tenant for isolation's sake:
//! the request's role and user decide which rows exist (owners see theirs, staff what
//! their role's policies allow, nobody sees an internal note as a user).
use super::domain::{TicketCategory, TicketPriority, TicketStatus};
use crate::{error::AppResult, pagination::Cursor};
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

fn utc(t: DateTime<FixedOffset>) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

fn opt_utc(r: &QueryResult, col: &str) -> AppResult<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<DateTime<FixedOffset>>>("", col)?.map(utc))
}

fn stmt(sql: impl Into<String>, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A ticket as stored.
#[derive(Clone, Debug)]
pub struct TicketRow {
    /// Its id.
    pub id: Uuid,
    /// Who opened it.
    pub user_id: Uuid,
    /// Subject.
    pub subject: String,
    /// Category.
    pub category: TicketCategory,
    /// Priority.
    pub priority: TicketPriority,
    /// Status.
    pub status: TicketStatus,
    /// The user's job it is about.
    pub job_id: Option<Uuid>,
    /// The user's draft it is about.
    pub draft_id: Option<Uuid>,
    /// The staff member handling it.
    pub assignee_id: Option<Uuid>,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First staff reply.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Last resolution.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Last closing.
    pub closed_at: Option<DateTime<Utc>>,
}

const TICKET_COLUMNS: &str = "t.id, t.user_id, t.subject, t.category, t.priority, t.status, t.job_id, t.draft_id, \
     t.assignee_id, t.created_at, t.updated_at, t.first_response_at, t.resolved_at, t.closed_at";

fn ticket(r: &QueryResult) -> AppResult<TicketRow> {
    Ok(TicketRow {
        id: r.try_get("", "id")?,
        user_id: r.try_get("", "user_id")?,
        subject: r.try_get("", "subject")?,
        category: r.try_get("", "category")?,
        priority: r.try_get("", "priority")?,
        status: r.try_get("", "status")?,
        job_id: r.try_get("", "job_id")?,
        draft_id: r.try_get("", "draft_id")?,
        assignee_id: r.try_get("", "assignee_id")?,
        created_at: utc(r.try_get("", "created_at")?),
        updated_at: utc(r.try_get("", "updated_at")?),
        first_response_at: opt_utc(r, "first_response_at")?,
        resolved_at: opt_utc(r, "resolved_at")?,
        closed_at: opt_utc(r, "closed_at")?,
    })
}

/// A message as stored.
#[derive(Clone, Debug)]
pub struct MessageRow {
    /// Its id.
    pub id: Uuid,
    /// The ticket's owner.
    pub user_id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// Who wrote it (None once that account is gone).
    pub author_id: Option<Uuid>,
    /// Whether staff wrote it.
    pub author_is_staff: bool,
    /// A staff author's display name.
    pub author_name: Option<String>,
    /// A staff-only note.
    pub internal: bool,
    /// Markdown as written.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

const MESSAGE_COLUMNS: &str =
    "id, user_id, ticket_id, author_id, author_is_staff, author_name, internal, body, created_at";

fn message(r: &QueryResult) -> AppResult<MessageRow> {
    Ok(MessageRow {
        id: r.try_get("", "id")?,
        user_id: r.try_get("", "user_id")?,
        ticket_id: r.try_get("", "ticket_id")?,
        author_id: r.try_get("", "author_id")?,
        author_is_staff: r.try_get("", "author_is_staff")?,
        author_name: r.try_get("", "author_name")?,
        internal: r.try_get("", "internal")?,
        body: r.try_get("", "body")?,
        created_at: utc(r.try_get("", "created_at")?),
    })
}

/// A new ticket's fields.
#[derive(Debug)]
pub struct NewTicket<'a> {
    /// Its id.
    pub id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// Subject.
    pub subject: &'a str,
    /// Category.
    pub category: TicketCategory,
    /// Priority.
    pub priority: TicketPriority,
    /// Linked job.
    pub job_id: Option<Uuid>,
    /// Linked draft.
    pub draft_id: Option<Uuid>,
}

/// Inserts a ticket.
///
/// Errors: INTERNAL (database).
pub async fn insert_ticket(db: &impl ConnectionTrait, t: &NewTicket<'_>) -> AppResult<TicketRow> {
    let r = db
        .query_one(stmt(
            format!(
                "INSERT INTO tickets AS t (id, user_id, subject, category, priority, job_id, draft_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {TICKET_COLUMNS}"
            ),
            [
                t.id.into(),
                t.user_id.into(),
                t.subject.into(),
                t.category.into(),
                t.priority.into(),
                t.job_id.into(),
                t.draft_id.into(),
            ],
        ))
        .await?;
    ticket(&r.ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?)
}

/// One ticket the caller can see.
///
/// Errors: INTERNAL (database).
pub async fn get_ticket(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<TicketRow>> {
    let r = db.query_one(stmt(format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1"), [id.into()])).await?;
    r.as_ref().map(ticket).transpose()
}

/// Which tickets a list returns.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// Only this owner's (a user's own list).
    pub user_id: Option<Uuid>,
    /// Only these statuses.
    pub status: Option<TicketStatus>,
    /// Only this assignee's.
    pub assignee_id: Option<Uuid>,
    /// Only unassigned ones.
    pub unassigned: bool,
    /// Only this category.
    pub category: Option<TicketCategory>,
    /// Subject or any visible message containing this text (case-insensitive).
    pub search: Option<String>,
}

/// Tickets the caller can see, newest first, after `after`, at most `limit`.
///
/// Errors: INTERNAL (database).
pub async fn list_tickets(
    db: &impl ConnectionTrait,
    f: &TicketFilter,
    after: Option<Cursor>,
    limit: u64,
) -> AppResult<Vec<TicketRow>> {
    let pattern = f.search.as_ref().map(|s| {
        let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = db
        .query_all(stmt(
            format!(
                "SELECT {TICKET_COLUMNS} FROM tickets t
                 WHERE ($1::uuid IS NULL OR t.user_id = $1)
                   AND ($2::text IS NULL OR t.status = $2)
                   AND ($3::uuid IS NULL OR t.assignee_id = $3)
                   AND (NOT $4 OR t.assignee_id IS NULL)
                   AND ($5::text IS NULL OR t.category = $5)
                   AND ($6::text IS NULL OR t.subject ILIKE $6
                        OR EXISTS (SELECT 1 FROM ticket_messages m
                                   WHERE m.user_id = t.user_id AND m.ticket_id = t.id AND m.body ILIKE $6))
                   AND ($7::timestamptz IS NULL OR (t.created_at, t.id) < ($7, $8))
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $9"
            ),
            [
                f.user_id.into(),
                f.status.map(|s| s.as_str().to_owned()).into(),
                f.assignee_id.into(),
                f.unassigned.into(),
                f.category.map(|c| c.as_str().to_owned()).into(),
                pattern.into(),
                after.map(|c| c.created_at).into(),
                after.map(|c| c.id).unwrap_or_default().into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter().map(ticket).collect()
}

/// How many of the user's tickets are open or pending.
///
/// Errors: INTERNAL (database).
pub async fn count_open(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<i64> {
    let r = db
        .query_one(stmt(
            "SELECT count(*) AS n FROM tickets WHERE user_id = $1 AND status IN ('open', 'pending')",
            [user_id.into()],
        ))
        .await?;
    Ok(r.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

/// The messages `author_id` wrote since `since`: how many, and the oldest's time.
///
/// Errors: INTERNAL (database).
pub async fn recent_messages(
    db: &impl ConnectionTrait,
    author_id: Uuid,
    since: DateTime<Utc>,
) -> AppResult<(i64, Option<DateTime<Utc>>)> {
    let r = db
        .query_one(stmt(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM ticket_messages
             WHERE author_id = $1 AND NOT author_is_staff AND created_at > $2",
            [author_id.into(), since.into()],
        ))
        .await?;
    match r {
        Some(r) => Ok((r.try_get("", "n")?, opt_utc(&r, "oldest")?)),
        None => Ok((0, None)),
    }
}

/// A new message's fields.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// The ticket's owner.
    pub user_id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// The writer.
    pub author_id: Uuid,
    /// Whether the writer is staff acting as staff.
    pub author_is_staff: bool,
    /// A staff writer's display name.
    pub author_name: Option<&'a str>,
    /// A staff-only note.
    pub internal: bool,
    /// Markdown.
    pub body: &'a str,
}

/// Inserts a message.
///
/// Errors: INTERNAL (database).
pub async fn insert_message(db: &impl ConnectionTrait, m: &NewMessage<'_>) -> AppResult<MessageRow> {
    let r = db
        .query_one(stmt(
            format!(
                "INSERT INTO ticket_messages (id, user_id, ticket_id, author_id, author_is_staff, author_name, internal, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {MESSAGE_COLUMNS}"
            ),
            [
                Uuid::now_v7().into(),
                m.user_id.into(),
                m.ticket_id.into(),
                m.author_id.into(),
                m.author_is_staff.into(),
                m.author_name.map(str::to_owned).into(),
                m.internal.into(),
                m.body.into(),
            ],
        ))
        .await?;
    message(&r.ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?)
}

/// The messages of a ticket the caller can see, oldest first (at most `limit`).
///
/// Errors: INTERNAL (database).
pub async fn list_messages(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ticket_id: Uuid,
    limit: i64,
) -> AppResult<Vec<MessageRow>> {
    let rows = db
        .query_all(stmt(
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM ticket_messages WHERE user_id = $1 AND ticket_id = $2
                 ORDER BY created_at, id LIMIT $3"
            ),
            [user_id.into(), ticket_id.into(), limit.into()],
        ))
        .await?;
    rows.iter().map(message).collect()
}

/// One message the caller can see.
///
/// Errors: INTERNAL (database).
pub async fn get_message(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<MessageRow>> {
    let r =
        db.query_one(stmt(format!("SELECT {MESSAGE_COLUMNS} FROM ticket_messages WHERE id = $1"), [id.into()])).await?;
    r.as_ref().map(message).transpose()
}

/// What a ticket update changes; None leaves a column as it is.
#[derive(Debug, Default)]
pub struct TicketChange {
    /// New status (stamps resolved_at/closed_at when it resolves or closes).
    pub status: Option<TicketStatus>,
    /// New assignee (`Some(None)` unassigns).
    pub assignee_id: Option<Option<Uuid>>,
    /// Stamp the first response if there is none yet.
    pub first_response: bool,
}

/// Applies `change` to a ticket the caller may update; returns it as it is now.
///
/// Errors: INTERNAL (database).
pub async fn update_ticket(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    change: &TicketChange,
) -> AppResult<Option<TicketRow>> {
    let mut sets = vec!["updated_at = now()".to_owned()];
    let mut values: Vec<Value> = vec![user_id.into(), id.into()];
    if let Some(s) = change.status {
        values.push(s.into());
        let n = values.len();
        sets.push(format!("status = ${n}"));
        match s {
            TicketStatus::Resolved => sets.push("resolved_at = now()".into()),
            TicketStatus::Closed => sets.push("closed_at = now()".into()),
            _ => {}
        }
    }
    if let Some(a) = change.assignee_id {
        values.push(a.into());
        sets.push(format!("assignee_id = ${}", values.len()));
    }
    if change.first_response {
        sets.push("first_response_at = coalesce(first_response_at, now())".into());
    }
    let r = db
        .query_one(stmt(
            format!(
                "UPDATE tickets t SET {} WHERE t.user_id = $1 AND t.id = $2 RETURNING {TICKET_COLUMNS}",
                sets.join(", ")
            ),
            values,
        ))
        .await?;
    r.as_ref().map(ticket).transpose()
}

/// Whether the user has this job (visible to the caller).
///
/// Errors: INTERNAL (database).
pub async fn job_exists(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<bool> {
    exists(db, "SELECT 1 AS x FROM jobs WHERE user_id = $1 AND id = $2", user_id, id).await
}

/// Whether the user has this draft, not deleted (visible to the caller).
///
/// Errors: INTERNAL (database).
pub async fn draft_exists(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> AppResult<bool> {
    exists(db, "SELECT 1 AS x FROM drafts WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL", user_id, id).await
}

async fn exists(db: &impl ConnectionTrait, sql: &str, a: Uuid, b: Uuid) -> AppResult<bool> {
    Ok(db.query_one(stmt(sql, [a.into(), b.into()])).await?.is_some())
}

/// A visible account's role and display name.
///
/// Errors: INTERNAL (database).
pub async fn account(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<(String, Option<String>)>> {
    let r = db.query_one(stmt("SELECT role, display_name FROM users WHERE id = $1", [id.into()])).await?;
    match r {
        Some(r) => Ok(Some((r.try_get("", "role")?, r.try_get("", "display_name")?))),
        None => Ok(None),
    }
}

/// Takes the user's support lock until the transaction ends, so two requests cannot
/// both pass a limit check (open tickets, messages per hour).
///
/// Errors: INTERNAL (database).
pub async fn lock_user(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    db.execute(stmt("SELECT pg_advisory_xact_lock(hashtextextended($1, 14))", [format!("support:{user_id}").into()]))
        .await?;
    Ok(())
}

/// A grant as stored.
#[derive(Clone, Debug)]
pub struct GrantRow {
    /// Its id.
    pub id: Uuid,
    /// Given.
    pub created_at: DateTime<Utc>,
    /// Ends.
    pub expires_at: DateTime<Utc>,
}

/// Records a grant of `hours`.
///
/// Errors: INTERNAL (database).
pub async fn insert_grant(db: &impl ConnectionTrait, user_id: Uuid, hours: i32) -> AppResult<GrantRow> {
    let r = db
        .query_one(stmt(
            "INSERT INTO support_access_grants (id, user_id, expires_at)
             VALUES ($1, $2, now() + make_interval(hours => $3)) RETURNING id, created_at, expires_at",
            [Uuid::now_v7().into(), user_id.into(), hours.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?;
    Ok(GrantRow {
        id: r.try_get("", "id")?,
        created_at: utc(r.try_get("", "created_at")?),
        expires_at: utc(r.try_get("", "expires_at")?),
    })
}

/// Revokes the user's live grants; returns how many.
///
/// Errors: INTERNAL (database).
pub async fn revoke_grants(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<u64> {
    let done = db
        .execute(stmt(
            "UPDATE support_access_grants SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()",
            [user_id.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// The end of the user's live grant, if any.
///
/// Errors: INTERNAL (database).
pub async fn live_grant(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<DateTime<Utc>>> {
    let r = db
        .query_one(stmt(
            "SELECT max(expires_at) AS e FROM support_access_grants
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()",
            [user_id.into()],
        ))
        .await?;
    match r {
        Some(r) => opt_utc(&r, "e"),
        None => Ok(None),
    }
}

/// An access-log entry as stored.
#[derive(Clone, Debug)]
pub struct AccessRow {
    /// Its id.
    pub id: Uuid,
    /// The staff member.
    pub staff_id: Uuid,
    /// Their display name.
    pub staff_name: String,
    /// Their role.
    pub staff_role: String,
    /// What they read or did.
    pub action: String,
    /// Why: the ticket.
    pub ticket_id: Option<Uuid>,
    /// A reason given.
    pub reason: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A new access-log entry.
#[derive(Debug)]
pub struct NewAccess<'a> {
    /// Whose data.
    pub user_id: Uuid,
    /// The staff member.
    pub staff_id: Uuid,
    /// Their display name.
    pub staff_name: &'a str,
    /// Their role (`support` or `admin`).
    pub staff_role: &'a str,
    /// What.
    pub action: &'a str,
    /// Why: the ticket.
    pub ticket_id: Option<Uuid>,
    /// Who ran the command line step (`cli:<OS user>@<host>`); None over the API.
    pub operator: Option<&'a str>,
    /// A reason given.
    pub reason: Option<&'a str>,
}

/// Appends access-log entries, one per user of `user_ids`.
///
/// Errors: INTERNAL (database).
pub async fn insert_access(db: &impl ConnectionTrait, a: &NewAccess<'_>) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO support_access_log
           (id, user_id, staff_id, staff_name, staff_role, action, ticket_id, reason, operator)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            Uuid::now_v7().into(),
            a.user_id.into(),
            a.staff_id.into(),
            a.staff_name.into(),
            a.staff_role.into(),
            a.action.into(),
            a.ticket_id.into(),
            a.reason.map(str::to_owned).into(),
            a.operator.map(str::to_owned).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The user's access log, newest first, after `after`, at most `limit`.
///
/// Errors: INTERNAL (database).
pub async fn list_access(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    after: Option<Cursor>,
    limit: u64,
) -> AppResult<Vec<AccessRow>> {
    let rows = db
        .query_all(stmt(
            "SELECT id, staff_id, staff_name, staff_role, action, ticket_id, reason, created_at FROM support_access_log
             WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             ORDER BY created_at DESC, id DESC LIMIT $4",
            [
                user_id.into(),
                after.map(|c| c.created_at).into(),
                after.map(|c| c.id).unwrap_or_default().into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AccessRow {
                id: r.try_get("", "id")?,
                staff_id: r.try_get("", "staff_id")?,
                staff_name: r.try_get("", "staff_name")?,
                staff_role: r.try_get("", "staff_role")?,
                action: r.try_get("", "action")?,
                ticket_id: r.try_get("", "ticket_id")?,
                reason: r.try_get("", "reason")?,
                created_at: utc(r.try_get("", "created_at")?),
            })
        })
        .collect()
}

/// A canned reply.
#[derive(Clone, Debug)]
pub struct CannedRow {
    /// Its id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Markdown.
    pub body: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn canned(r: &QueryResult) -> AppResult<CannedRow> {
    Ok(CannedRow {
        id: r.try_get("", "id")?,
        title: r.try_get("", "title")?,
        body: r.try_get("", "body")?,
        updated_at: utc(r.try_get("", "updated_at")?),
    })
}

/// Every canned reply, by title.
///
/// Errors: INTERNAL (database).
pub async fn list_canned(db: &impl ConnectionTrait) -> AppResult<Vec<CannedRow>> {
    let rows = db
        .query_all(stmt("SELECT id, title, body, updated_at FROM canned_replies ORDER BY title, id LIMIT 500", []))
        .await?;
    rows.iter().map(canned).collect()
}

/// Creates a canned reply.
///
/// Errors: INTERNAL (database).
pub async fn insert_canned(db: &impl ConnectionTrait, by: Uuid, title: &str, body: &str) -> AppResult<CannedRow> {
    let r = db
        .query_one(stmt(
            "INSERT INTO canned_replies (id, title, body, created_by) VALUES ($1, $2, $3, $4)
             RETURNING id, title, body, updated_at",
            [Uuid::now_v7().into(), title.into(), body.into(), by.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?;
    canned(&r)
}

/// Changes a canned reply; None when there is none with this id.
///
/// Errors: INTERNAL (database).
pub async fn update_canned(
    db: &impl ConnectionTrait,
    id: Uuid,
    title: &str,
    body: &str,
) -> AppResult<Option<CannedRow>> {
    let r = db
        .query_one(stmt(
            "UPDATE canned_replies SET title = $2, body = $3, updated_at = now() WHERE id = $1
             RETURNING id, title, body, updated_at",
            [id.into(), title.into(), body.into()],
        ))
        .await?;
    r.as_ref().map(canned).transpose()
}

/// A ticket attachment as stored.
#[derive(Clone, Debug)]
pub struct AttachmentRow {
    /// Its id.
    pub id: Uuid,
    /// The ticket's owner.
    pub user_id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// The message it is attached to, once sent.
    pub message_id: Option<Uuid>,
    /// Where its bytes are (the upload key while pending, the sealed key once ready).
    pub object_key: String,
    /// The name it was uploaded under.
    pub file_name: String,
    /// Its checked type.
    pub content_type: String,
    /// Its size.
    pub byte_size: i64,
    /// `pending` or `ready`.
    pub status: String,
    /// Who uploaded it.
    pub uploaded_by: Option<Uuid>,
    /// Whether staff uploaded it (not counted in the owner's storage).
    pub by_staff: bool,
    /// It belongs to an internal note (never visible to the user).
    pub internal: bool,
    /// The SHA-256 the uploader declared, checked at confirmation.
    pub declared_sha256: Option<Vec<u8>>,
    /// The SHA-256 of the checked bytes.
    pub sha256: Option<Vec<u8>>,
    /// Reserved.
    pub created_at: DateTime<Utc>,
}

const ATTACHMENT_COLUMNS: &str = "id, user_id, ticket_id, message_id, object_key, file_name, content_type, byte_size, \
     status, uploaded_by, by_staff, internal, declared_sha256, sha256, created_at";

fn attachment(r: &QueryResult) -> AppResult<AttachmentRow> {
    Ok(AttachmentRow {
        id: r.try_get("", "id")?,
        user_id: r.try_get("", "user_id")?,
        ticket_id: r.try_get("", "ticket_id")?,
        message_id: r.try_get("", "message_id")?,
        object_key: r.try_get("", "object_key")?,
        file_name: r.try_get("", "file_name")?,
        content_type: r.try_get("", "content_type")?,
        byte_size: r.try_get("", "byte_size")?,
        status: r.try_get("", "status")?,
        uploaded_by: r.try_get("", "uploaded_by")?,
        by_staff: r.try_get("", "by_staff")?,
        internal: r.try_get("", "internal")?,
        declared_sha256: r.try_get("", "declared_sha256")?,
        sha256: r.try_get("", "sha256")?,
        created_at: utc(r.try_get("", "created_at")?),
    })
}

/// A new attachment reservation.
#[derive(Debug)]
pub struct NewAttachment<'a> {
    /// Its id.
    pub id: Uuid,
    /// The ticket's owner.
    pub user_id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// The upload key.
    pub object_key: &'a str,
    /// The file's name.
    pub file_name: &'a str,
    /// Its declared type.
    pub content_type: &'a str,
    /// Its declared size.
    pub byte_size: i64,
    /// The uploader.
    pub uploaded_by: Uuid,
    /// Whether the uploader is staff acting as staff.
    pub by_staff: bool,
    /// For an internal note.
    pub internal: bool,
    /// The declared SHA-256.
    pub declared_sha256: Option<Vec<u8>>,
}

/// Inserts a reservation.
///
/// Errors: INTERNAL (database).
pub async fn insert_attachment(db: &impl ConnectionTrait, a: &NewAttachment<'_>) -> AppResult<AttachmentRow> {
    let r = db
        .query_one(stmt(
            format!(
                "INSERT INTO ticket_attachments (id, user_id, ticket_id, object_key, file_name, content_type, byte_size,
                   uploaded_by, by_staff, internal, declared_sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {ATTACHMENT_COLUMNS}"
            ),
            [
                a.id.into(),
                a.user_id.into(),
                a.ticket_id.into(),
                a.object_key.into(),
                a.file_name.into(),
                a.content_type.into(),
                a.byte_size.into(),
                a.uploaded_by.into(),
                a.by_staff.into(),
                a.internal.into(),
                a.declared_sha256.clone().into(),
            ],
        ))
        .await?;
    attachment(&r.ok_or_else(|| anyhow::anyhow!("INSERT RETURNING gave no row"))?)
}

/// One attachment the caller can see.
///
/// Errors: INTERNAL (database).
pub async fn get_attachment(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<AttachmentRow>> {
    let r = db
        .query_one(stmt(format!("SELECT {ATTACHMENT_COLUMNS} FROM ticket_attachments WHERE id = $1"), [id.into()]))
        .await?;
    r.as_ref().map(attachment).transpose()
}

/// Marks an attachment checked: its sealed key and hash.
///
/// Errors: INTERNAL (database).
pub async fn seal_attachment(
    db: &impl ConnectionTrait,
    a: &AttachmentRow,
    object_key: &str,
    sha256: &[u8],
) -> AppResult<Option<AttachmentRow>> {
    let r = db
        .query_one(stmt(
            format!(
                "UPDATE ticket_attachments SET status = 'ready', object_key = $3, sha256 = $4
                 WHERE user_id = $1 AND id = $2 RETURNING {ATTACHMENT_COLUMNS}"
            ),
            [a.user_id.into(), a.id.into(), object_key.into(), sha256.to_vec().into()],
        ))
        .await?;
    r.as_ref().map(attachment).transpose()
}

/// Attaches a ready, unattached attachment to a message; whether it did.
///
/// Errors: INTERNAL (database).
pub async fn attach_to_message(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    message_id: Uuid,
) -> AppResult<bool> {
    let done = db
        .execute(stmt(
            "UPDATE ticket_attachments SET message_id = $3
             WHERE user_id = $1 AND id = $2 AND status = 'ready' AND message_id IS NULL",
            [user_id.into(), id.into(), message_id.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The attachments of a ticket's messages the caller can see, oldest first.
///
/// Errors: INTERNAL (database).
pub async fn list_attachments(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ticket_id: Uuid,
    message_ids: Option<&[Uuid]>,
) -> AppResult<Vec<AttachmentRow>> {
    let ids: Option<Vec<Uuid>> = message_ids.map(<[Uuid]>::to_vec);
    let rows = db
        .query_all(stmt(
            format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM ticket_attachments
                 WHERE user_id = $1 AND ticket_id = $2 AND message_id IS NOT NULL
                   AND ($3::uuid[] IS NULL OR message_id = ANY($3))
                 ORDER BY created_at, id LIMIT 2000"
            ),
            [user_id.into(), ticket_id.into(), ids.into()],
        ))
        .await?;
    rows.iter().map(attachment).collect()
}

/// Schedules the e-mail of a staff reply, due `delay_secs` from now, in the reply's
/// transaction (the sweeper mails it only if `notification_id` is still unread then).
///
/// Errors: INTERNAL (database, or the policy refusing a note or another's message).
pub async fn schedule_reply_mail(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    message_id: Uuid,
    ticket_id: Uuid,
    notification_id: Uuid,
    delay_secs: i64,
) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO support_reply_mails (user_id, message_id, ticket_id, notification_id, due_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::double precision))",
        [user_id.into(), message_id.into(), ticket_id.into(), notification_id.into(), (delay_secs as f64).into()],
    ))
    .await?;
    Ok(())
}

/// The Chatwoot conversation status a ticket status maps to (Chatwoot has no closed:
/// a closed ticket's conversation is resolved).
pub fn chatwoot_status(status: TicketStatus) -> &'static str {
    match status {
        TicketStatus::Open => "open",
        TicketStatus::Pending => "pending",
        TicketStatus::Resolved | TicketStatus::Closed => "resolved",
    }
}

/// Queues a row of the Chatwoot outbox: the copy of message `message_id`, or the
/// conversation's new `status`, of the ticket. The policies allow a user its own
/// messages and status changes, staff theirs.
///
/// Errors: INTERNAL (database, or a policy refusing the row).
pub async fn queue_mirror(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ticket_id: Uuid,
    message_id: Option<Uuid>,
    status: Option<TicketStatus>,
) -> AppResult<()> {
    db.execute(stmt(
        "INSERT INTO chatwoot_outbox (id, user_id, ticket_id, message_id, status) VALUES ($1, $2, $3, $4, $5)",
        [
            Uuid::now_v7().into(),
            user_id.into(),
            ticket_id.into(),
            message_id.into(),
            status.map(|s| chatwoot_status(s).to_owned()).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A ticket's CSAT rating, as stored (`ticket_csat`, written by feedback).
#[derive(Clone, Debug)]
pub struct CsatRow {
    /// The ticket's owner.
    pub user_id: Uuid,
    /// The rated ticket.
    pub ticket_id: Uuid,
    /// 1 to 5.
    pub score: i16,
    /// Why, if said.
    pub comment: Option<String>,
    /// When it was given.
    pub created_at: DateTime<Utc>,
}

/// The ratings of the tickets `keys` ((owner, ticket) pairs) the caller may read: a user
/// its own, staff any (migration `m20261204_000401_staff_read_ticket_csat`).
///
/// Errors: INTERNAL.
pub async fn csat_of(db: &impl ConnectionTrait, keys: &[(Uuid, Uuid)]) -> AppResult<Vec<CsatRow>> {
    let (users, tickets): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    let rows = db
        .query_all(stmt(
            "SELECT c.user_id, c.ticket_id, c.score, c.comment, c.created_at
             FROM ticket_csat c
             JOIN unnest($1::uuid[], $2::uuid[]) AS k(user_id, ticket_id)
               ON c.user_id = k.user_id AND c.ticket_id = k.ticket_id",
            [users.into(), tickets.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(CsatRow {
                user_id: r.try_get("", "user_id")?,
                ticket_id: r.try_get("", "ticket_id")?,
                score: r.try_get("", "score")?,
                comment: r.try_get("", "comment")?,
                created_at: utc(r.try_get("", "created_at")?),
            })
        })
        .collect()
}
