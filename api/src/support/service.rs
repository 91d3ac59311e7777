//! Support's rules: who may open, read, answer and move a ticket, the limits a user
//! meets, and the access log every staff read of a user's data leaves. No GraphQL here.
//!
//! The database decides what exists for the caller (row-level security); this layer
//! decides what a caller may do with what it sees: a ticket's owner acts as a user on
//! it, staff act as staff on other users' tickets, anyone else finds nothing.
use super::{
    domain::{Body, Subject, TicketCategory, TicketPriority, TicketStatus},
    store::{
        self, AccessRow, CannedRow, GrantRow, MessageRow, NewAccess, NewMessage, NewTicket, TicketChange, TicketFilter,
        TicketRow,
    },
};
use crate::{
    activity::service::{self as activity, Entry},
    db::RequestTx,
    email::templates,
    error::{AppError, AppResult},
    events::Event,
    model::Role,
    notifications::service as notifications,
    pagination::{Page, PageRequest},
    principal::UserClaims,
};
use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;

/// Most messages a ticket shows.
pub const MESSAGES_LIMIT: i64 = 500;
/// Longest access grant, in hours (30 days).
pub const MAX_GRANT_HOURS: i32 = 720;

/// A user's limits (configuration: `PLINTH_SUPPORT_MAX_OPEN_TICKETS`,
/// `PLINTH_SUPPORT_MESSAGES_PER_HOUR`), and what a change of a ticket sets off.
#[derive(Clone, Copy, Debug)]
pub struct SupportLimits {
    /// Open or pending tickets a user may have at once.
    pub max_open_tickets: i64,
    /// Messages a user may write in any hour (staff are not limited).
    pub messages_per_hour: i64,
    /// How long after a staff reply it is mailed to a user who has not read it.
    pub reply_mail_delay_secs: i64,
    /// Whether tickets are mirrored to Chatwoot (`PLINTH_CHATWOOT_URL` set): each message
    /// and status change queues a row of the Chatwoot outbox in its transaction.
    pub mirror: bool,
}

impl Default for SupportLimits {
    fn default() -> Self {
        SupportLimits { max_open_tickets: 5, messages_per_hour: 30, reply_mail_delay_secs: 300, mirror: false }
    }
}

/// Queues the Chatwoot copy of `message` when the bridge is on.
async fn mirror_message(tx: &RequestTx, limits: SupportLimits, message: &MessageRow) -> AppResult<()> {
    if limits.mirror {
        store::queue_mirror(tx, message.user_id, message.ticket_id, Some(message.id), None).await?;
    }
    Ok(())
}

/// Queues the Chatwoot conversation's new status when the bridge is on and `ticket`'s
/// status changed from `before`.
async fn mirror_status(
    tx: &RequestTx,
    limits: SupportLimits,
    before: TicketStatus,
    ticket: &TicketRow,
) -> AppResult<()> {
    if limits.mirror && before != ticket.status {
        store::queue_mirror(tx, ticket.user_id, ticket.id, None, Some(ticket.status)).await?;
    }
    Ok(())
}

/// The caller's claims. Errors: UNAUTHENTICATED.
pub(super) fn claims(tx: &RequestTx) -> AppResult<&UserClaims> {
    tx.principal().claims().ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
}

/// The caller's claims when it is staff. Errors: UNAUTHENTICATED, FORBIDDEN.
pub(super) fn staff(tx: &RequestTx) -> AppResult<&UserClaims> {
    let c = claims(tx)?;
    if c.role.is_staff() && c.api.is_none() {
        Ok(c)
    } else {
        Err(AppError::Forbidden("only support staff may do this".into()))
    }
}

fn ticket_not_found() -> AppError {
    AppError::NotFound("ticket not found".into())
}

/// What `openTicket` takes.
#[derive(Debug)]
pub struct OpenTicket {
    /// Subject.
    pub subject: Subject,
    /// Category.
    pub category: TicketCategory,
    /// Priority (normal when absent).
    pub priority: Option<TicketPriority>,
    /// The first message.
    pub body: Body,
    /// One of the caller's jobs.
    pub job_id: Option<Uuid>,
    /// One of the caller's drafts.
    pub draft_id: Option<Uuid>,
}

/// Opens a ticket with its first message.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND (`jobId`, `draftId` not the caller's);
/// BAD_USER_INPUT (too many open tickets); RATE_LIMITED (messages per hour); INTERNAL.
pub async fn open(tx: &RequestTx, limits: SupportLimits, input: OpenTicket) -> AppResult<(TicketRow, MessageRow)> {
    let user_id = claims(tx)?.user_id;
    if let Some(job) = input.job_id {
        if !store::job_exists(tx, user_id, job).await? {
            return Err(AppError::NotFound("job not found".into()));
        }
    }
    if let Some(draft) = input.draft_id {
        if !store::draft_exists(tx, user_id, draft).await? {
            return Err(AppError::NotFound("draft not found".into()));
        }
    }
    store::lock_user(tx, user_id).await?;
    if store::count_open(tx, user_id).await? >= limits.max_open_tickets {
        return Err(AppError::bad_input(
            "input",
            format!("you have {} open tickets already; close one before opening another", limits.max_open_tickets),
        ));
    }
    check_message_rate(tx, limits, user_id).await?;
    let ticket = store::insert_ticket(
        tx,
        &NewTicket {
            id: Uuid::now_v7(),
            user_id,
            subject: input.subject.as_str(),
            category: input.category,
            priority: input.priority.unwrap_or(TicketPriority::Normal),
            job_id: input.job_id,
            draft_id: input.draft_id,
        },
    )
    .await?;
    let message = store::insert_message(
        tx,
        &NewMessage {
            user_id,
            ticket_id: ticket.id,
            author_id: user_id,
            author_is_staff: false,
            author_name: None,
            internal: false,
            body: input.body.as_str(),
        },
    )
    .await?;
    mirror_message(tx, limits, &message).await?;
    activity::record(tx, Entry::by_user(user_id, "ticket.open", Some(("ticket", ticket.id)), json!({}))).await?;
    emit(tx, &ticket, Some(&message));
    Ok((ticket, message))
}

/// RATE_LIMITED when the user wrote `messages_per_hour` messages in the last hour.
async fn check_message_rate(tx: &RequestTx, limits: SupportLimits, user_id: Uuid) -> AppResult<()> {
    let now = Utc::now();
    let (n, oldest) = store::recent_messages(tx, user_id, now - Duration::hours(1)).await?;
    if n >= limits.messages_per_hour {
        let frees_at = oldest.unwrap_or(now) + Duration::hours(1);
        let retry_after_secs = (frees_at - now).num_seconds().clamp(1, 3600) as u64;
        return Err(AppError::RateLimited { retry_after_secs });
    }
    Ok(())
}

fn emit(tx: &RequestTx, ticket: &TicketRow, message: Option<&MessageRow>) {
    tx.emit(Event::TicketChanged {
        user_id: ticket.user_id,
        ticket_id: ticket.id,
        message_id: message.map(|m| m.id),
        internal: message.is_some_and(|m| m.internal),
    });
}

/// Whom a visible ticket is to the caller.
pub(super) enum Side {
    /// The caller opened it.
    Owner,
    /// The caller is staff working on another user's ticket.
    Staff,
}

/// The ticket and the caller's side of it. Errors: NOT_FOUND (absent, or not the
/// caller's and the caller is not staff).
pub(super) async fn ticket_for(tx: &RequestTx, id: Uuid) -> AppResult<(TicketRow, Side, Uuid)> {
    let c = claims(tx)?;
    let ticket = store::get_ticket(tx, id).await?.ok_or_else(ticket_not_found)?;
    if ticket.user_id == c.user_id {
        Ok((ticket, Side::Owner, c.user_id))
    } else if c.role.is_staff() && c.api.is_none() {
        Ok((ticket, Side::Staff, c.user_id))
    } else {
        Err(ticket_not_found())
    }
}

/// A ticket the caller opened (another domain's check that a ticket is the caller's:
/// CSAT). Staff get nothing more here than any user.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND (absent, or not the caller's: never told apart);
/// INTERNAL.
pub async fn own_ticket(tx: &RequestTx, id: Uuid) -> AppResult<TicketRow> {
    match ticket_for(tx, id).await? {
        (ticket, Side::Owner, _) => Ok(ticket),
        (_, Side::Staff, _) => Err(ticket_not_found()),
    }
}

/// A staff member's display name (their own row).
async fn staff_name(tx: &RequestTx, staff_id: Uuid) -> AppResult<String> {
    let name = store::account(tx, staff_id).await?.and_then(|(_, n)| n);
    Ok(name.unwrap_or_else(|| "Support".to_owned()))
}

/// Records that the calling staff member read or acted on `user_id`'s data, for
/// `ticket_id` (why), in the user's access log.
///
/// Errors: FORBIDDEN (not staff); INTERNAL.
pub async fn log_access(
    tx: &RequestTx,
    user_id: Uuid,
    action: &str,
    ticket_id: Option<Uuid>,
    reason: Option<&str>,
) -> AppResult<()> {
    let c = staff(tx)?;
    let name = staff_name(tx, c.user_id).await?;
    store::insert_access(
        tx,
        &NewAccess {
            user_id,
            staff_id: c.user_id,
            staff_name: &name,
            staff_role: c.role.as_str(),
            action,
            ticket_id,
            reason,
            operator: tx.meta().operator.as_deref(),
        },
    )
    .await
}

/// Adds a reply: the owner's (reopens a pending or resolved ticket), or staff's (the
/// first one stamps the first response; the ticket then waits for the user).
///
/// `attachments` are the caller's confirmed uploads for this ticket, sent with it.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; BAD_USER_INPUT (`ticketId`: closed, reopen it
/// first; `attachmentIds`); RATE_LIMITED (the owner's messages per hour); INTERNAL.
pub async fn reply(
    tx: &RequestTx,
    limits: SupportLimits,
    ticket_id: Uuid,
    body: Body,
    attachments: &[Uuid],
) -> AppResult<MessageRow> {
    let (ticket, side, me) = ticket_for(tx, ticket_id).await?;
    if ticket.status == TicketStatus::Closed {
        return Err(AppError::bad_input("ticketId", "the ticket is closed; reopen it first"));
    }
    match side {
        Side::Owner => {
            store::lock_user(tx, me).await?;
            check_message_rate(tx, limits, me).await?;
            let message = store::insert_message(
                tx,
                &NewMessage {
                    user_id: me,
                    ticket_id,
                    author_id: me,
                    author_is_staff: false,
                    author_name: None,
                    internal: false,
                    body: body.as_str(),
                },
            )
            .await?;
            let status =
                matches!(ticket.status, TicketStatus::Pending | TicketStatus::Resolved).then_some(TicketStatus::Open);
            attach(tx, &ticket, &message, attachments).await?;
            mirror_message(tx, limits, &message).await?;
            let ticket = store::update_ticket(tx, me, ticket_id, &TicketChange { status, ..Default::default() })
                .await?
                .ok_or_else(ticket_not_found)?;
            if let Some(assignee) = ticket.assignee_id.filter(|a| *a != me) {
                let mut note = templates::support_reply(&ticket.subject, body.as_str(), &ticket_link(ticket.id));
                note.subject = format!("The user replied: {}", ticket.subject);
                notifications::notify_in_app(tx, assignee, &note).await?;
            }
            emit(tx, &ticket, Some(&message));
            Ok(message)
        }
        Side::Staff => staff_message(tx, limits, ticket, me, body, false, attachments).await,
    }
}

/// Adds a staff-only note to a ticket, with the caller's internal uploads.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN (not staff); NOT_FOUND; BAD_USER_INPUT
/// (`attachmentIds`); INTERNAL.
pub async fn add_note(
    tx: &RequestTx,
    limits: SupportLimits,
    ticket_id: Uuid,
    body: Body,
    attachments: &[Uuid],
) -> AppResult<MessageRow> {
    let me = staff(tx)?.user_id;
    let ticket = store::get_ticket(tx, ticket_id).await?.ok_or_else(ticket_not_found)?;
    staff_message(tx, limits, ticket, me, body, true, attachments).await
}

async fn staff_message(
    tx: &RequestTx,
    limits: SupportLimits,
    ticket: TicketRow,
    me: Uuid,
    body: Body,
    internal: bool,
    attachments: &[Uuid],
) -> AppResult<MessageRow> {
    let name = staff_name(tx, me).await?;
    let message = store::insert_message(
        tx,
        &NewMessage {
            user_id: ticket.user_id,
            ticket_id: ticket.id,
            author_id: me,
            author_is_staff: true,
            author_name: Some(&name),
            internal,
            body: body.as_str(),
        },
    )
    .await?;
    attach(tx, &ticket, &message, attachments).await?;
    mirror_message(tx, limits, &message).await?;
    let change = if internal {
        TicketChange::default()
    } else {
        let status = matches!(ticket.status, TicketStatus::Open).then_some(TicketStatus::Pending);
        TicketChange { status, first_response: true, ..Default::default() }
    };
    let updated = store::update_ticket(tx, ticket.user_id, ticket.id, &change).await?.ok_or_else(ticket_not_found)?;
    if !internal {
        // At once in the app (live when connected); by e-mail (template `support_reply`)
        // only if the notification is still unread after the delay: scheduled here, in
        // this transaction, and sent by the sweeper of `tasks::mail_unread_replies`.
        let note = templates::support_reply(&ticket.subject, body.as_str(), &ticket_link(ticket.id));
        let notification = notifications::notify_in_app(tx, ticket.user_id, &note).await?;
        let delay = limits.reply_mail_delay_secs;
        store::schedule_reply_mail(tx, ticket.user_id, message.id, ticket.id, notification, delay).await?;
    }
    let action = if internal { "ticket.note" } else { "ticket.reply" };
    log_access(tx, ticket.user_id, action, Some(ticket.id), None).await?;
    emit(tx, &updated, Some(&message));
    Ok(message)
}

/// Attachments one message may carry.
pub const MAX_PER_MESSAGE: usize = 10;

/// Attaches the caller's ready, unattached uploads of this ticket to a message it just
/// wrote (an internal note's files must be internal ones, a reply's must not).
///
/// Errors: BAD_USER_INPUT (`attachmentIds`: too many, unknown, pending, already sent,
/// another ticket's, or internal for a reply and the reverse); INTERNAL.
pub async fn attach(tx: &RequestTx, ticket: &TicketRow, message: &MessageRow, ids: &[Uuid]) -> AppResult<()> {
    if ids.len() > MAX_PER_MESSAGE {
        return Err(AppError::bad_input("attachmentIds", format!("at most {MAX_PER_MESSAGE} files per message")));
    }
    let me = claims(tx)?.user_id;
    for id in ids {
        let refuse = || {
            AppError::bad_input(
                "attachmentIds",
                format!("{id} is not a confirmed upload of yours for this ticket that is not sent yet"),
            )
        };
        let row = store::get_attachment(tx, *id).await?.ok_or_else(refuse)?;
        if row.uploaded_by != Some(me) || row.ticket_id != ticket.id || row.internal != message.internal {
            return Err(refuse());
        }
        if !store::attach_to_message(tx, row.user_id, row.id, message.id).await? {
            return Err(refuse());
        }
    }
    Ok(())
}

/// Where a ticket is read in the web app (relative to the public URL).
pub fn ticket_link(id: Uuid) -> String {
    format!("/support/tickets/{id}")
}

/// The owner closes its ticket.
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; INTERNAL.
pub async fn close(tx: &RequestTx, limits: SupportLimits, id: Uuid) -> AppResult<TicketRow> {
    let (ticket, side, me) = ticket_for(tx, id).await?;
    if !matches!(side, Side::Owner) {
        return Err(ticket_not_found());
    }
    if ticket.status == TicketStatus::Closed {
        return Ok(ticket);
    }
    let before = ticket.status;
    let change = TicketChange { status: Some(TicketStatus::Closed), ..Default::default() };
    let ticket = store::update_ticket(tx, me, id, &change).await?.ok_or_else(ticket_not_found)?;
    mirror_status(tx, limits, before, &ticket).await?;
    activity::record(tx, Entry::by_user(me, "ticket.close", Some(("ticket", id)), json!({}))).await?;
    emit(tx, &ticket, None);
    Ok(ticket)
}

/// The owner reopens a resolved or closed ticket (within the open-ticket limit).
///
/// Errors: UNAUTHENTICATED; NOT_FOUND; BAD_USER_INPUT (too many open tickets);
/// INTERNAL.
pub async fn reopen(tx: &RequestTx, limits: SupportLimits, id: Uuid) -> AppResult<TicketRow> {
    let (ticket, side, me) = ticket_for(tx, id).await?;
    if !matches!(side, Side::Owner) {
        return Err(ticket_not_found());
    }
    if ticket.status.is_open() {
        return Ok(ticket);
    }
    store::lock_user(tx, me).await?;
    if store::count_open(tx, me).await? >= limits.max_open_tickets {
        return Err(AppError::bad_input(
            "id",
            format!("you have {} open tickets already; close one before reopening another", limits.max_open_tickets),
        ));
    }
    let before = ticket.status;
    let change = TicketChange { status: Some(TicketStatus::Open), ..Default::default() };
    let ticket = store::update_ticket(tx, me, id, &change).await?.ok_or_else(ticket_not_found)?;
    mirror_status(tx, limits, before, &ticket).await?;
    activity::record(tx, Entry::by_user(me, "ticket.reopen", Some(("ticket", id)), json!({}))).await?;
    emit(tx, &ticket, None);
    Ok(ticket)
}

/// Staff set a ticket's status (resolving stamps the resolution time).
///
/// Errors: UNAUTHENTICATED; FORBIDDEN; NOT_FOUND; INTERNAL.
pub async fn set_status(tx: &RequestTx, limits: SupportLimits, id: Uuid, status: TicketStatus) -> AppResult<TicketRow> {
    staff(tx)?;
    let ticket = store::get_ticket(tx, id).await?.ok_or_else(ticket_not_found)?;
    let before = ticket.status;
    let change = TicketChange { status: Some(status), ..Default::default() };
    let ticket = store::update_ticket(tx, ticket.user_id, id, &change).await?.ok_or_else(ticket_not_found)?;
    mirror_status(tx, limits, before, &ticket).await?;
    log_access(tx, ticket.user_id, &format!("ticket.status.{status}"), Some(id), None).await?;
    emit(tx, &ticket, None);
    Ok(ticket)
}

/// Staff assign a ticket to a staff member (None: unassign).
///
/// Errors: UNAUTHENTICATED; FORBIDDEN; NOT_FOUND (ticket); BAD_USER_INPUT
/// (`assigneeId` is not staff); INTERNAL.
pub async fn assign(tx: &RequestTx, id: Uuid, assignee: Option<Uuid>) -> AppResult<TicketRow> {
    staff(tx)?;
    let ticket = store::get_ticket(tx, id).await?.ok_or_else(ticket_not_found)?;
    if let Some(a) = assignee {
        let role = store::account(tx, a).await?.map(|(r, _)| r);
        if !matches!(role.as_deref(), Some("support" | "admin")) {
            return Err(AppError::bad_input("assigneeId", "is not a support staff member"));
        }
    }
    let change = TicketChange { assignee_id: Some(assignee), ..Default::default() };
    let ticket = store::update_ticket(tx, ticket.user_id, id, &change).await?.ok_or_else(ticket_not_found)?;
    log_access(tx, ticket.user_id, "ticket.assign", Some(id), None).await?;
    emit(tx, &ticket, None);
    Ok(ticket)
}

/// A ticket the caller may see: its own, or (staff) anyone's, which is logged.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn get(tx: &RequestTx, id: Uuid) -> AppResult<Option<TicketRow>> {
    match ticket_for(tx, id).await {
        Ok((ticket, Side::Owner, _)) => Ok(Some(ticket)),
        Ok((ticket, Side::Staff, _)) => {
            log_access(tx, ticket.user_id, "ticket.view", Some(id), None).await?;
            Ok(Some(ticket))
        }
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The messages of a visible ticket (internal notes only for staff: the database
/// hides them from users).
///
/// Errors: INTERNAL.
pub async fn messages(tx: &RequestTx, ticket: &TicketRow) -> AppResult<Vec<MessageRow>> {
    store::list_messages(tx, ticket.user_id, ticket.id, MESSAGES_LIMIT).await
}

/// The CSAT ratings of visible tickets (`keys`: (owner, ticket) pairs): a user reads
/// its own, staff those of the tickets they were shown (each already logged as read).
///
/// Errors: INTERNAL.
pub async fn csat_of(tx: &RequestTx, keys: &[(Uuid, Uuid)]) -> AppResult<Vec<store::CsatRow>> {
    store::csat_of(tx, keys).await
}

/// A page of the caller's tickets, newest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn list_own(tx: &RequestTx, page: PageRequest, status: Option<TicketStatus>) -> AppResult<Page<TicketRow>> {
    let filter = TicketFilter { user_id: Some(claims(tx)?.user_id), status, ..Default::default() };
    let rows = store::list_tickets(tx, &filter, page.after, page.limit()).await?;
    Ok(Page::from_rows(rows, &page))
}

/// A page of the support inbox (every user's tickets), newest first; each ticket
/// listed is logged as read.
///
/// Errors: UNAUTHENTICATED; FORBIDDEN; INTERNAL.
pub async fn inbox(tx: &RequestTx, page: PageRequest, filter: TicketFilter) -> AppResult<Page<TicketRow>> {
    staff(tx)?;
    let filter = TicketFilter { user_id: None, ..filter };
    let rows = store::list_tickets(tx, &filter, page.after, page.limit()).await?;
    let page = Page::from_rows(rows, &page);
    for t in &page.items {
        log_access(tx, t.user_id, "inbox.list", Some(t.id), None).await?;
    }
    Ok(page)
}

/// One message the caller can see (for live updates).
///
/// Errors: INTERNAL.
pub async fn message(tx: &RequestTx, id: Uuid) -> AppResult<Option<MessageRow>> {
    store::get_message(tx, id).await
}

/// A ticket the caller can see, without logging (live updates carry no user data
/// beyond what the caller already read).
///
/// Errors: INTERNAL.
pub async fn peek(tx: &RequestTx, id: Uuid) -> AppResult<Option<TicketRow>> {
    store::get_ticket(tx, id).await
}

/// The user gives support access to its account for `hours`.
///
/// Errors: UNAUTHENTICATED; BAD_USER_INPUT (`hours`); INTERNAL.
pub async fn grant(tx: &RequestTx, hours: i32) -> AppResult<GrantRow> {
    let me = claims(tx)?.user_id;
    if !(1..=MAX_GRANT_HOURS).contains(&hours) {
        return Err(AppError::bad_input("hours", format!("must be between 1 and {MAX_GRANT_HOURS}")));
    }
    let g = store::insert_grant(tx, me, hours).await?;
    activity::record(tx, Entry::by_user(me, "support.grant", None, json!({ "hours": hours }))).await?;
    Ok(g)
}

/// The user withdraws every live grant; returns whether one was live.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn revoke(tx: &RequestTx) -> AppResult<bool> {
    let me = claims(tx)?.user_id;
    let n = store::revoke_grants(tx, me).await?;
    if n > 0 {
        activity::record(tx, Entry::by_user(me, "support.revoke", None, json!({}))).await?;
    }
    Ok(n > 0)
}

/// When the caller's live grant ends, if one is live.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn live_grant(tx: &RequestTx) -> AppResult<Option<chrono::DateTime<Utc>>> {
    store::live_grant(tx, claims(tx)?.user_id).await
}

/// A page of who at support read or acted on the caller's data, newest first.
///
/// Errors: UNAUTHENTICATED; INTERNAL.
pub async fn access_log(tx: &RequestTx, page: PageRequest) -> AppResult<Page<AccessRow>> {
    let rows = store::list_access(tx, claims(tx)?.user_id, page.after, page.limit()).await?;
    Ok(Page::from_rows(rows, &page))
}

/// Canned replies (staff).
///
/// Errors: FORBIDDEN; INTERNAL.
pub async fn canned(tx: &RequestTx) -> AppResult<Vec<CannedRow>> {
    staff(tx)?;
    store::list_canned(tx).await
}

fn admin(tx: &RequestTx) -> AppResult<Uuid> {
    let c = staff(tx)?;
    if c.role == Role::Admin {
        Ok(c.user_id)
    } else {
        Err(AppError::Forbidden("only admins may do this".into()))
    }
}

/// Creates (`id` None) or changes a canned reply (admins).
///
/// Errors: FORBIDDEN; NOT_FOUND; INTERNAL.
pub async fn save_canned(tx: &RequestTx, id: Option<Uuid>, title: &Subject, body: &Body) -> AppResult<CannedRow> {
    let me = admin(tx)?;
    match id {
        None => store::insert_canned(tx, me, title.as_str(), body.as_str()).await,
        Some(id) => store::update_canned(tx, id, title.as_str(), body.as_str())
            .await?
            .ok_or_else(|| AppError::NotFound("canned reply not found".into())),
    }
}
