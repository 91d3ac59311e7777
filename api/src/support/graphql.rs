//! GraphQL adapters for support: the users' tickets, the staff inbox, access grants and
//! the access log, canned replies, and the live `ticketUpdated` and
//! `supportInboxUpdated` subscriptions.
use super::{
    attachments::{self, NewUpload, SupportFiles},
    domain::{render_markdown, Body, Subject, TicketCategory, TicketPriority, TicketStatus},
    service::{self, OpenTicket, SupportLimits},
    store::{AccessRow, AttachmentRow, CannedRow, CsatRow, MessageRow, TicketFilter, TicketRow},
};
use crate::{
    auth::{
        guards::{live_check, ApiRule, NoApiTokens, SignedIn, Staff},
        tokens::TokenService,
    },
    db::{data, live, RequestMeta, RequestTx},
    error::{parse_id, AppError},
    events::{Event, EventBus, Topic},
    model::Role,
    pagination::{page_cost, Cursor, PageRequest},
    photos::graphql::HttpHeader,
    principal::Principal,
};
use async_graphql::{
    connection::Connection,
    dataloader::{DataLoader, HashMapCache, Loader},
    ComplexObject, Context, Enum, InputObject, Object, Result, SimpleObject, Subscription, ID,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

/// Messages assumed per ticket, for complexity.
const MESSAGES_ESTIMATE: usize = 50;

fn is_staff(p: &Principal) -> bool {
    p.claims().is_some_and(|c| c.role.is_staff() && c.api.is_none())
}

/// A support ticket.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Ticket {
    /// Its id.
    pub id: ID,
    /// Subject.
    pub subject: String,
    /// Category.
    pub category: TicketCategory,
    /// Priority.
    pub priority: TicketPriority,
    /// Status.
    pub status: TicketStatus,
    /// The owner's job it is about.
    pub job_id: Option<ID>,
    /// The owner's draft it is about.
    pub draft_id: Option<ID>,
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
    #[graphql(skip)]
    row: TicketRow,
}

impl From<TicketRow> for Ticket {
    fn from(t: TicketRow) -> Self {
        Ticket {
            id: ID(t.id.to_string()),
            subject: t.subject.clone(),
            category: t.category,
            priority: t.priority,
            status: t.status,
            job_id: t.job_id.map(|i| ID(i.to_string())),
            draft_id: t.draft_id.map(|i| ID(i.to_string())),
            created_at: t.created_at,
            updated_at: t.updated_at,
            first_response_at: t.first_response_at,
            resolved_at: t.resolved_at,
            closed_at: t.closed_at,
            row: t,
        }
    }
}

#[ComplexObject]
impl Ticket {
    /// The conversation, oldest first (at most 500). Internal notes appear for staff
    /// only. Not available in subscriptions (their updates carry the new message).
    #[graphql(complexity = "MESSAGES_ESTIMATE * child_complexity + 1")]
    async fn messages(&self, ctx: &Context<'_>) -> Result<Vec<TicketMessage>> {
        let tx = data::<RequestTx>(ctx)?;
        let messages = service::messages(tx, &self.row).await?;
        let mut files = attachments::of_messages(tx, self.row.user_id, self.row.id, None).await?;
        Ok(messages
            .into_iter()
            .map(|m| {
                let mine = files.extract_if(.., |a| a.message_id == Some(m.id)).collect();
                TicketMessage::with_attachments(m, mine)
            })
            .collect())
    }

    /// Its CSAT rating by its owner, null when not rated (yet). The owner and staff
    /// read it; batched over a list of tickets. Null in subscriptions.
    async fn csat(&self, ctx: &Context<'_>) -> Result<Option<CsatRating>> {
        let Ok(loader) = ctx.data::<CsatLoader>() else { return Ok(None) };
        Ok(loader.load_one((self.row.user_id, self.row.id)).await?.map(CsatRating::from))
    }

    /// The account that opened it (staff only; null for users).
    async fn user_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        Ok(is_staff(data::<Principal>(ctx)?).then(|| ID(self.row.user_id.to_string())))
    }

    /// The staff member handling it (staff only; null for users).
    async fn assignee_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        Ok(self.row.assignee_id.filter(|_| is_staff_ctx(ctx)).map(|a| ID(a.to_string())))
    }
}

/// A CSAT rating of a ticket.
#[derive(SimpleObject, Debug)]
pub struct CsatRating {
    /// The rated ticket.
    pub ticket_id: ID,
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: i32,
    /// Why, if said.
    pub comment: Option<String>,
    /// When it was given.
    pub submitted_at: DateTime<Utc>,
}

impl From<CsatRow> for CsatRating {
    fn from(c: CsatRow) -> Self {
        CsatRating {
            ticket_id: ID(c.ticket_id.to_string()),
            score: c.score.into(),
            comment: c.comment,
            submitted_at: c.created_at,
        }
    }
}

/// The per-request (owner, ticket) → CSAT rating loader.
pub type CsatLoader = DataLoader<CsatByTicket, HashMapCache>;

/// CSAT ratings of tickets, batched, on the request's transaction (RLS decides).
pub struct CsatByTicket(pub RequestTx);

impl Loader<(Uuid, Uuid)> for CsatByTicket {
    type Value = CsatRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[(Uuid, Uuid)]) -> Result<HashMap<(Uuid, Uuid), CsatRow>, Self::Error> {
        Ok(service::csat_of(&self.0, keys).await?.into_iter().map(|c| ((c.user_id, c.ticket_id), c)).collect())
    }
}

fn is_staff_ctx(ctx: &Context<'_>) -> bool {
    data::<Principal>(ctx).map(is_staff).unwrap_or(false)
}

/// Who wrote a message.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AuthorKind {
    /// The ticket's owner.
    User,
    /// Support staff.
    Staff,
}

/// A message's author, as the reader may see it: staff by display name.
#[derive(SimpleObject)]
pub struct MessageAuthor {
    /// User or staff.
    pub kind: AuthorKind,
    /// A staff member's display name; null for the user.
    pub name: Option<String>,
}

/// One message of a ticket.
#[derive(SimpleObject)]
pub struct TicketMessage {
    /// Its id.
    pub id: ID,
    /// The ticket.
    pub ticket_id: ID,
    /// Who wrote it.
    pub author: MessageAuthor,
    /// Markdown, as written.
    pub body: String,
    /// The Markdown rendered to sanitized HTML.
    pub body_html: String,
    /// A staff-only note (users never receive these).
    pub internal: bool,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Files sent with it (an internal note's only for staff).
    pub attachments: Vec<TicketAttachment>,
}

impl TicketMessage {
    fn with_attachments(m: MessageRow, files: Vec<AttachmentRow>) -> Self {
        let mut message = TicketMessage::from(m);
        message.attachments = files.into_iter().map(TicketAttachment::from).collect();
        message
    }
}

/// Upload state of an attachment.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentStatus {
    /// Reserved; waiting for the upload and its confirmation.
    Pending,
    /// Uploaded and checked.
    Ready,
}

/// A file on a ticket: an image (PNG, JPEG, WebP) or a PDF.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct TicketAttachment {
    /// Its id.
    pub id: ID,
    /// The ticket.
    pub ticket_id: ID,
    /// The message it was sent with; null until sent.
    pub message_id: Option<ID>,
    /// The name it was uploaded under.
    pub file_name: String,
    /// Its checked type.
    pub content_type: String,
    /// Its size in bytes.
    pub byte_size: i64,
    /// SHA-256 of the bytes (hex), once confirmed.
    pub sha256: Option<String>,
    /// Upload state.
    pub status: AttachmentStatus,
    /// Belongs to an internal note (staff only).
    pub internal: bool,
    /// Reserved.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    row: AttachmentRow,
}

impl From<AttachmentRow> for TicketAttachment {
    fn from(a: AttachmentRow) -> Self {
        TicketAttachment {
            id: ID(a.id.to_string()),
            ticket_id: ID(a.ticket_id.to_string()),
            message_id: a.message_id.map(|m| ID(m.to_string())),
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone(),
            byte_size: a.byte_size,
            sha256: a.sha256.as_ref().map(hex::encode),
            status: if a.status == "ready" { AttachmentStatus::Ready } else { AttachmentStatus::Pending },
            internal: a.internal,
            created_at: a.created_at,
            row: a,
        }
    }
}

#[ComplexObject]
impl TicketAttachment {
    /// A download URL (5 minutes; `Content-Disposition: attachment` under the file
    /// name); null while pending, and in subscriptions (read the ticket). Staff reading
    /// another user's file leave an entry in that user's access log.
    async fn url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let Ok(tx) = ctx.data::<RequestTx>() else { return Ok(None) };
        Ok(data::<Arc<SupportFiles>>(ctx)?.url(tx, &self.row).await?)
    }
}

/// Where and how to upload a reserved attachment.
#[derive(SimpleObject)]
pub struct TicketAttachmentUpload {
    /// The reserved attachment (PENDING until confirmed).
    pub attachment: TicketAttachment,
    /// The presigned URL.
    pub upload_url: String,
    /// The HTTP method: PUT.
    pub method: String,
    /// Headers the upload must carry, exactly.
    pub headers: Vec<HttpHeader>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// Input of `createTicketAttachmentUpload`.
#[derive(InputObject)]
pub struct TicketAttachmentInput {
    /// The ticket.
    pub ticket_id: ID,
    /// The file's name (1 to 200 characters, no slashes).
    pub file_name: String,
    /// `image/png`, `image/jpeg`, `image/webp` or `application/pdf`.
    pub content_type: String,
    /// Exact size in bytes (at most `PLINTH_SUPPORT_MAX_ATTACHMENT_BYTES`).
    pub byte_size: i64,
    /// SHA-256 of the bytes (hex), checked at confirmation when given.
    pub sha256: Option<String>,
    /// For an internal note (staff only).
    #[graphql(default)]
    pub internal: bool,
}

impl From<MessageRow> for TicketMessage {
    fn from(m: MessageRow) -> Self {
        TicketMessage {
            id: ID(m.id.to_string()),
            ticket_id: ID(m.ticket_id.to_string()),
            author: MessageAuthor {
                kind: if m.author_is_staff { AuthorKind::Staff } else { AuthorKind::User },
                name: if m.author_is_staff { m.author_name } else { None },
            },
            body_html: render_markdown(&m.body),
            body: m.body,
            internal: m.internal,
            created_at: m.created_at,
            attachments: Vec::new(),
        }
    }
}

fn parse_ids(field: &str, ids: Option<Vec<ID>>) -> Result<Vec<Uuid>, AppError> {
    ids.unwrap_or_default().iter().map(|i| parse_id(field, i)).collect()
}

/// The message with its attachments, read in the request.
async fn with_files(tx: &RequestTx, m: MessageRow) -> Result<TicketMessage, AppError> {
    let files = attachments::of_messages(tx, m.user_id, m.ticket_id, Some(&[m.id])).await?;
    Ok(TicketMessage::with_attachments(m, files))
}

/// A live change of a ticket.
#[derive(SimpleObject)]
pub struct TicketUpdate {
    /// The ticket as it is now.
    pub ticket: Ticket,
    /// The message added, when the change is one.
    pub message: Option<TicketMessage>,
}

/// A live change in the support inbox: ids and state only (reading the ticket is a
/// logged read).
#[derive(SimpleObject)]
pub struct InboxUpdate {
    /// The ticket.
    pub ticket_id: ID,
    /// Its status.
    pub status: TicketStatus,
    /// Its category.
    pub category: TicketCategory,
    /// Its priority.
    pub priority: TicketPriority,
    /// Its assignee.
    pub assignee_id: Option<ID>,
    /// Whether a message was added (an internal note when `internal`).
    pub message_added: bool,
    /// Whether that message is an internal note.
    pub internal: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A user's permission for support to read its account.
#[derive(SimpleObject)]
pub struct SupportAccessGrant {
    /// Its id.
    pub id: ID,
    /// Given.
    pub created_at: DateTime<Utc>,
    /// Ends.
    pub expires_at: DateTime<Utc>,
}

/// One read of, or action on, the caller's data by support staff.
#[derive(SimpleObject)]
pub struct SupportAccessEntry {
    /// Its id.
    pub id: ID,
    /// The staff member's display name.
    pub staff_name: String,
    /// SUPPORT or ADMIN.
    pub staff_role: Role,
    /// What was read or done (e.g. `ticket.view`, `ticket.reply`).
    pub action: String,
    /// Why: the ticket.
    pub ticket_id: Option<ID>,
    /// A reason given.
    pub reason: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<AccessRow> for SupportAccessEntry {
    fn from(a: AccessRow) -> Self {
        SupportAccessEntry {
            id: ID(a.id.to_string()),
            staff_name: a.staff_name,
            staff_role: if a.staff_role == "admin" { Role::Admin } else { Role::Support },
            action: a.action,
            ticket_id: a.ticket_id.map(|t| ID(t.to_string())),
            reason: a.reason,
            created_at: a.created_at,
        }
    }
}

/// A prepared answer staff paste into replies.
#[derive(SimpleObject)]
pub struct CannedReply {
    /// Its id.
    pub id: ID,
    /// Title.
    pub title: String,
    /// Markdown.
    pub body: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<CannedRow> for CannedReply {
    fn from(c: CannedRow) -> Self {
        CannedReply { id: ID(c.id.to_string()), title: c.title, body: c.body, updated_at: c.updated_at }
    }
}

/// Input of `openTicket`.
#[derive(InputObject)]
pub struct OpenTicketInput {
    /// Subject (1 to 200 characters, one line).
    pub subject: String,
    /// Category.
    pub category: TicketCategory,
    /// Priority (NORMAL by default).
    pub priority: Option<TicketPriority>,
    /// The first message, Markdown (1 to 10,000 characters).
    pub body: String,
    /// One of the caller's jobs it is about.
    pub job_id: Option<ID>,
    /// One of the caller's drafts it is about.
    pub draft_id: Option<ID>,
}

/// Which tickets `supportInbox` lists.
#[derive(InputObject, Default)]
pub struct SupportInboxFilter {
    /// Only this status.
    pub status: Option<TicketStatus>,
    /// Only this staff member's.
    pub assignee_id: Option<ID>,
    /// Only unassigned tickets.
    pub unassigned: Option<bool>,
    /// Only this category.
    pub category: Option<TicketCategory>,
    /// Subject or any message containing this text.
    pub search: Option<String>,
}

/// Input of `createCannedReply` and `updateCannedReply`.
#[derive(InputObject)]
pub struct CannedReplyInput {
    /// Title (1 to 200 characters).
    pub title: String,
    /// Markdown (1 to 10,000 characters).
    pub body: String,
}

fn ticket_cursor(t: &TicketRow) -> Cursor {
    Cursor { created_at: t.created_at, id: t.id }
}

/// Support queries.
#[derive(Default)]
pub struct SupportQuery;

#[Object]
impl SupportQuery {
    /// The caller's tickets, newest first, optionally of one status.
    #[graphql(guard = "NoApiTokens.and(SignedIn)", complexity = "page_cost(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<TicketStatus>,
    ) -> Result<Connection<String, Ticket>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = PageRequest::parse(first, after.as_deref())?;
        Ok(service::list_own(tx, page, status).await?.into_connection(ticket_cursor, Ticket::from))
    }

    /// One ticket: the caller's own, or for staff anyone's (a logged read); null when
    /// absent or not visible.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Ticket>> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::get(tx, parse_id("id", &id)?).await?.map(Ticket::from))
    }

    /// Who at support read or acted on the caller's data, newest first.
    #[graphql(guard = "NoApiTokens.and(SignedIn)", complexity = "page_cost(first, child_complexity)")]
    async fn support_access_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, SupportAccessEntry>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = PageRequest::parse(first, after.as_deref())?;
        Ok(service::access_log(tx, page)
            .await?
            .into_connection(|a| Cursor { created_at: a.created_at, id: a.id }, SupportAccessEntry::from))
    }

    /// When the caller's access grant to support ends; null when none is live.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn support_access_until(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(service::live_grant(data::<RequestTx>(ctx)?).await?)
    }

    /// The support inbox: every user's tickets, newest first (staff; each ticket listed
    /// is logged as read in its owner's access log).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))", complexity = "page_cost(first, child_complexity)")]
    async fn support_inbox(
        &self,
        ctx: &Context<'_>,
        filter: Option<SupportInboxFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Ticket>> {
        let tx = data::<RequestTx>(ctx)?;
        let page = PageRequest::parse(first, after.as_deref())?;
        let f = filter.unwrap_or_default();
        let filter = TicketFilter {
            user_id: None,
            status: f.status,
            assignee_id: f.assignee_id.map(|a| parse_id("filter.assigneeId", &a)).transpose()?,
            unassigned: f.unassigned.unwrap_or(false),
            category: f.category,
            search: f.search.map(|s| s.trim().chars().take(200).collect::<String>()).filter(|s| !s.is_empty()),
        };
        Ok(service::inbox(tx, page, filter).await?.into_connection(ticket_cursor, Ticket::from))
    }

    /// Prepared answers (staff).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))", complexity = "100 * child_complexity + 1")]
    async fn canned_replies(&self, ctx: &Context<'_>) -> Result<Vec<CannedReply>> {
        Ok(service::canned(data::<RequestTx>(ctx)?).await?.into_iter().map(CannedReply::from).collect())
    }
}

fn body(field: &str, raw: &str) -> Result<Body, AppError> {
    Body::parse(field, raw)
}

fn limits(ctx: &Context<'_>) -> SupportLimits {
    data::<SupportLimits>(ctx).copied().unwrap_or_default()
}

/// Support mutations.
#[derive(Default)]
pub struct SupportMutation;

#[Object]
impl SupportMutation {
    /// Opens a ticket with its first message.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn open_ticket(&self, ctx: &Context<'_>, input: OpenTicketInput) -> Result<Ticket> {
        let tx = data::<RequestTx>(ctx)?;
        let input = OpenTicket {
            subject: Subject::parse("input.subject", &input.subject)?,
            category: input.category,
            priority: input.priority,
            body: body("input.body", &input.body)?,
            job_id: input.job_id.map(|j| parse_id("input.jobId", &j)).transpose()?,
            draft_id: input.draft_id.map(|d| parse_id("input.draftId", &d)).transpose()?,
        };
        Ok(service::open(tx, limits(ctx), input).await?.0.into())
    }

    /// Adds a reply to a ticket: the owner's, or support's (shown by display name), with
    /// the caller's confirmed uploads for this ticket (`attachmentIds`, at most 10).
    ///
    /// Errors: NOT_FOUND (ticket); BAD_USER_INPUT (`body`, `ticketId` closed,
    /// `attachmentIds` not confirmed uploads of the caller for this ticket, already
    /// sent, or internal); RATE_LIMITED.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn reply_ticket(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
        attachment_ids: Option<Vec<ID>>,
    ) -> Result<TicketMessage> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("ticketId", &ticket_id)?;
        let files = parse_ids("attachmentIds", attachment_ids)?;
        let m = service::reply(tx, limits(ctx), id, self::body("body", &body)?, &files).await?;
        Ok(with_files(tx, m).await?)
    }

    /// Reserves a file on a ticket (the owner's, or staff's on a ticket they may read)
    /// and returns a presigned URL to PUT its bytes to (15 minutes); then
    /// `confirmTicketAttachment`, then send it with `replyTicket` or `addInternalNote`.
    /// The owner's files count in its `STORAGE_BYTES` gauge.
    ///
    /// Errors: NOT_FOUND (ticket); FORBIDDEN (`internal` by a user); BAD_USER_INPUT
    /// (`input.contentType` not PNG, JPEG, WebP or PDF; `input.byteSize` over the limit;
    /// `input.fileName`; `input.sha256`; `input.ticketId` closed); QUOTA_EXCEEDED
    /// (`STORAGE_BYTES`).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn create_ticket_attachment_upload(
        &self,
        ctx: &Context<'_>,
        input: TicketAttachmentInput,
    ) -> Result<TicketAttachmentUpload> {
        let tx = data::<RequestTx>(ctx)?;
        let upload = NewUpload {
            ticket_id: parse_id("input.ticketId", &input.ticket_id)?,
            file_name: &input.file_name,
            content_type: &input.content_type,
            byte_size: input.byte_size,
            sha256: input.sha256.as_deref(),
            internal: input.internal,
        };
        let (row, put) = data::<Arc<SupportFiles>>(ctx)?.reserve(tx, upload).await?;
        Ok(TicketAttachmentUpload {
            attachment: row.into(),
            upload_url: put.url,
            method: "PUT".into(),
            headers: put.headers.into_iter().map(|(name, value)| HttpHeader { name, value }).collect(),
            expires_at: put.expires_at,
        })
    }

    /// Confirms an uploaded attachment: checks its size, its type (declared and sniffed
    /// from the bytes) and its SHA-256 when declared, then seals it (uploader only).
    ///
    /// Errors: NOT_FOUND; BAD_USER_INPUT (`id`: nothing uploaded, wrong size or type,
    /// not the declared type, checksum mismatch; the upload is deleted); SERVICE_UNAVAILABLE.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn confirm_ticket_attachment(&self, ctx: &Context<'_>, id: ID) -> Result<TicketAttachment> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(data::<Arc<SupportFiles>>(ctx)?.confirm(tx, parse_id("id", &id)?).await?.into())
    }

    /// Closes one of the caller's tickets.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn close_ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        Ok(service::close(data::<RequestTx>(ctx)?, limits(ctx), parse_id("id", &id)?).await?.into())
    }

    /// Reopens one of the caller's resolved or closed tickets.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn reopen_ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        Ok(service::reopen(data::<RequestTx>(ctx)?, limits(ctx), parse_id("id", &id)?).await?.into())
    }

    /// Lets support read the caller's account for `hours` (1 to 720).
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn grant_support_access(&self, ctx: &Context<'_>, hours: i32) -> Result<SupportAccessGrant> {
        let g = service::grant(data::<RequestTx>(ctx)?, hours).await?;
        Ok(SupportAccessGrant { id: ID(g.id.to_string()), created_at: g.created_at, expires_at: g.expires_at })
    }

    /// Withdraws the caller's access grants; whether one was live.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn revoke_support_access(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(service::revoke(data::<RequestTx>(ctx)?).await?)
    }

    /// Assigns a ticket to a staff member, or unassigns it (staff).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn assign_ticket(&self, ctx: &Context<'_>, ticket_id: ID, assignee_id: Option<ID>) -> Result<Ticket> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("ticketId", &ticket_id)?;
        let assignee = assignee_id.map(|a| parse_id("assigneeId", &a)).transpose()?;
        Ok(service::assign(tx, id, assignee).await?.into())
    }

    /// Adds a staff-only note, never shown to the user (staff), with the caller's
    /// confirmed internal uploads (`attachmentIds`).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn add_internal_note(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
        attachment_ids: Option<Vec<ID>>,
    ) -> Result<TicketMessage> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("ticketId", &ticket_id)?;
        let files = parse_ids("attachmentIds", attachment_ids)?;
        let m = service::add_note(tx, limits(ctx), id, self::body("body", &body)?, &files).await?;
        Ok(with_files(tx, m).await?)
    }

    /// Sets a ticket's status (staff; RESOLVED stamps the resolution time).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn set_ticket_status(&self, ctx: &Context<'_>, ticket_id: ID, status: TicketStatus) -> Result<Ticket> {
        let tx = data::<RequestTx>(ctx)?;
        Ok(service::set_status(tx, limits(ctx), parse_id("ticketId", &ticket_id)?, status).await?.into())
    }

    /// Creates a canned reply (admins).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn create_canned_reply(&self, ctx: &Context<'_>, input: CannedReplyInput) -> Result<CannedReply> {
        let tx = data::<RequestTx>(ctx)?;
        let title = Subject::parse("input.title", &input.title)?;
        Ok(service::save_canned(tx, None, &title, &body("input.body", &input.body)?).await?.into())
    }

    /// Changes a canned reply (admins).
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Admin))")]
    async fn update_canned_reply(&self, ctx: &Context<'_>, id: ID, input: CannedReplyInput) -> Result<CannedReply> {
        let tx = data::<RequestTx>(ctx)?;
        let id = parse_id("id", &id)?;
        let title = Subject::parse("input.title", &input.title)?;
        Ok(service::save_canned(tx, Some(id), &title, &body("input.body", &input.body)?).await?.into())
    }
}

/// What an event of a ticket names: its message when one was added, else the ticket.
/// Both are read again as the subscriber (the message first: ids never collide).
async fn read_update(tx: RequestTx, id: Uuid) -> Result<Option<(TicketRow, Option<TicketMessage>)>, AppError> {
    if let Some(m) = service::message(&tx, id).await? {
        let Some(t) = service::peek(&tx, m.ticket_id).await? else { return Ok(None) };
        return Ok(Some((t, Some(with_files(&tx, m).await?))));
    }
    Ok(service::peek(&tx, id).await?.map(|t| (t, None)))
}

/// Live support.
#[derive(Default)]
pub struct SupportSubscription;

#[Subscription]
impl SupportSubscription {
    /// Each new message and status change of one ticket (`id`), or of all the caller's
    /// tickets. Users never receive internal notes (the event is not routed to them and
    /// the database would not show it). Staff following another user's ticket leave an
    /// access-log row when they subscribe.
    #[graphql(guard = "NoApiTokens.and(SignedIn)")]
    async fn ticket_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<TicketUpdate>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let me = principal.user_id();
        let staff = is_staff(&principal);
        let only = id.map(|i| parse_id("id", &i)).transpose()?;
        let source = data::<live::LiveSource>(ctx)?;
        // Whose events to hear: the caller's, or the owner's of the ticket followed.
        let mut owner = me;
        if let Some(ticket_id) = only {
            // The ticket must be visible now; staff's following is a logged read.
            let tx = RequestTx::new(
                &source.pool,
                principal.clone(),
                RequestMeta::internal("subscription"),
                source.statement_timeout_ms,
            );
            // Boxed, as the commit below: async-graphql keeps this resolver's future for
            // the subscription's life, and an inline read would stay in it.
            let found = Box::pin(async {
                let t = service::peek(&tx, ticket_id)
                    .await?
                    .ok_or_else(|| AppError::NotFound("ticket not found".into()))?;
                if Some(t.user_id) != me {
                    if !staff {
                        return Err(AppError::NotFound("ticket not found".into()));
                    }
                    service::log_access(&tx, t.user_id, "ticket.follow", Some(t.id), None).await?;
                }
                Ok::<_, AppError>(t.user_id)
            })
            .await;
            match found {
                Ok(ticket_owner) => {
                    Box::pin(tx.commit_without_events()).await.map_err(AppError::from)?;
                    owner = Some(ticket_owner);
                }
                Err(e) => {
                    Box::pin(tx.rollback()).await;
                    return Err(e.into());
                }
            }
        }
        let tokens = data::<Arc<TokenService>>(ctx)?.clone();
        let recheck = live_check(tokens, ApiRule::NoApiTokens, "ticketUpdated");
        let reader = source.reader(principal, recheck);
        let route = move |e: &Event| match e {
            Event::TicketChanged { user_id: owner, ticket_id, message_id, internal }
                if only.map_or(Some(*owner) == me, |o| o == *ticket_id) && (!internal || staff) =>
            {
                Some(message_id.unwrap_or(*ticket_id))
            }
            _ => None,
        };
        let read = |tx: RequestTx, id| async move {
            Ok(read_update(tx, id).await?.map(|(t, m)| TicketUpdate { ticket: t.into(), message: m }))
        };
        let topic = owner.map(Topic::User);
        Ok(live::follow(data::<Arc<EventBus>>(ctx)?, topic, reader, route, read).map(|r| r.map_err(Into::into)))
    }

    /// Every change in the support inbox (staff): ids and state, no user content.
    #[graphql(guard = "NoApiTokens.and(Staff(Role::Support))")]
    async fn support_inbox_updated(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Result<InboxUpdate>>> {
        let principal = data::<Principal>(ctx)?.clone();
        let tokens = data::<Arc<TokenService>>(ctx)?.clone();
        let recheck = live_check(tokens, ApiRule::NoApiTokens, "supportInboxUpdated");
        let reader = data::<live::LiveSource>(ctx)?.reader(principal, recheck);
        let route = |e: &Event| match e {
            Event::TicketChanged { ticket_id, message_id, .. } => Some(message_id.unwrap_or(*ticket_id)),
            _ => None,
        };
        let read = |tx: RequestTx, id| async move {
            Ok(read_update(tx, id).await?.map(|(t, m)| InboxUpdate {
                ticket_id: ID(t.id.to_string()),
                status: t.status,
                category: t.category,
                priority: t.priority,
                assignee_id: t.assignee_id.map(|a| ID(a.to_string())),
                message_added: m.is_some(),
                internal: m.as_ref().is_some_and(|m| m.internal),
                updated_at: t.updated_at,
            }))
        };
        Ok(live::follow(data::<Arc<EventBus>>(ctx)?, Some(Topic::Tickets), reader, route, read)
            .map(|r| r.map_err(Into::into)))
    }
}
