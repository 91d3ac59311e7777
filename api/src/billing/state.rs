//! The subscription state machine, pure: no I/O here; `webhook`, `reconcile` and the
//! sweeper (`tasks`) read the rows, call these functions and write what they return,
//! with the effects, in one transaction under the customer's lock.
//!
//! Two steps:
//! 1. [`merge`]: one subscription's stored row and a snapshot of it (an event's object,
//!    or Stripe's answer in reconcile) give its new row, or nothing when the snapshot is
//!    older than what is stored.
//! 2. [`derive`]: the account from the SET of the user's subscriptions at `now`: each
//!    subscription grants a standing (table below); the best one wins; no subscription
//!    granting anything is the Free plan. The account is never the last event's word.
//!
//! # Order of snapshots, and equal timestamps
//! A snapshot is versioned by its event's `created` (unix seconds). Stripe often emits
//! several events for one subscription within one second (`created` incomplete and
//! `updated` active when the first payment succeeds at once), and delivers them in any
//! order. Plinth decides by **status ranking**, not by fetching the subscription again:
//! a snapshot applies when its `(created, rank)` is at least the stored one's, where the
//! rank follows Stripe's lifecycle
//!
//! `incomplete`, unknown (0) < `trialing` (1) < `active` (2) < `past_due`, `paused` (3)
//! < `unpaid` (4) < `canceled`, `incomplete_expired`, deleted (5)
//!
//! so within one second a snapshot that looks older (ranks lower) never undoes a later
//! one; across seconds the time decides. Chosen over re-fetching (`GET
//! /v1/subscriptions/:id` outside the lock) because it keeps webhook intake free of
//! Stripe calls (a Stripe outage does not stall the intake, Stripe's rate limit is not
//! spent per event) and this function pure and testable over every pair. What it cannot
//! know: two snapshots of one second and one rank (say `active` with and without
//! `cancel_at_period_end`) apply in arrival order; and a same-second move *down* the
//! ranking (`past_due` back to `active` within the second a payment failed) would be
//! missed. Neither is a sequence Stripe produces within one second in practice, and
//! `plinth billing reconcile` (Stripe's list, applied as newer than anything stored)
//! repairs either. An ended subscription stays ended: Stripe never revives one.
//!
//! # Standing of one subscription, and the account (as implemented)
//!
//! | Stripe status | cancel flag (`cancel_at_period_end` / `cancel_at`) | grace | standing | plan | quotas |
//! |---|---|---|---|---|---|
//! | trialing, active | none, or its date still ahead (`billing.cancelsAt`) | – | ACTIVE | the subscription's | the plan's, periods from the billing anchor |
//! | past_due | date ahead | `past_due_since` + grace days ahead | GRACE (premium works) | the subscription's | the plan's, periods from the anchor |
//! | past_due | date ahead | over | SUSPENDED | the subscription's | premium refused (SUBSCRIPTION_INACTIVE) |
//! | unpaid | date ahead | – | SUSPENDED (unpaid debt) | the subscription's | premium refused |
//! | any | date passed (Stripe's deletion late or lost) | – | none | – | – |
//! | canceled, incomplete_expired, deleted, customer deleted | – | – | none: ended | – | – |
//! | incomplete (first payment pending) | – | – | none | – | – |
//! | paused (trial ended without a payment method: no debt) | – | – | none | – | – |
//! | a status Stripe adds later, or no catalog price ever seen | – | – | none (logged) | – | – |
//!
//! Account = the best standing: ACTIVE or GRACE before SUSPENDED; among those, the
//! higher plan (Scale > Pro > Starter), then ACTIVE before GRACE; with no standing at
//! all, FREE on the Free plan and its quotas (calendar months). Suspension is only ever
//! for unpaid debt. `past_due_since` is Stripe's time of the first past-due snapshot
//! of the spell, so grace does not depend on when the webhook arrived; the sweeper
//! derives accounts again when a grace or a cancellation date passes.
//!
//! An unknown price never downgrades: a snapshot whose items have no catalog price keeps
//! the subscription's last known plan (and the prices are logged and noted on the event).
use super::store::{Account, Subscription};
use crate::model::{AccountState, BillingInterval, EmailTemplate, PlanCode, SubscriptionStatus};
use chrono::{DateTime, Duration, Utc};

/// What a subscription event (or Stripe's answer, in reconcile) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `sub_...`.
    pub id: String,
    /// Its customer.
    pub customer: String,
    /// Its status, as Stripe spelled it (stored as is).
    pub status_text: String,
    /// Its status in the vocabulary; None for one Stripe added later.
    pub status: Option<SubscriptionStatus>,
    /// The plan and interval of the catalog price among its items (the highest plan if
    /// several); None when no item's price is in the catalog.
    pub plan: Option<(PlanCode, BillingInterval)>,
    /// Prices of its items that are not in the catalog (add-ons, or a mistake).
    pub unknown_prices: Vec<String>,
    /// Current period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub period_end: Option<DateTime<Utc>>,
    /// Stripe's billing cycle anchor.
    pub anchor: Option<DateTime<Utc>>,
    /// End of the trial.
    pub trial_end: Option<DateTime<Utc>>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
    /// When it is set to end.
    pub cancel_at: Option<DateTime<Utc>>,
    /// The quantity of its catalog item (seats); 1 when Stripe omits it.
    pub quantity: i64,
    /// The catalog's price of its plan and interval, in cents of the catalog currency,
    /// tax excluded; None with no catalog price.
    pub unit_amount_cents: Option<i64>,
    /// The catalog currency (lower case), with the price.
    pub currency: Option<String>,
}

/// Something a transition asks to be done, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Append `billing.state_changed` to the user's activity log.
    LogStateChange {
        /// Before.
        from: AccountState,
        /// After.
        to: AccountState,
        /// The plan shown after.
        plan: PlanCode,
    },
    /// Notify the user (in-app and e-mail) with `template`, about the account's plan,
    /// adding `detail`.
    Notify {
        /// The message.
        template: EmailTemplate,
        /// A sentence added to it.
        detail: String,
    },
    /// Refuse the user's outstanding access tokens (they carry the old plan and state).
    RevokeTokens,
    /// Close the user's live sockets.
    CloseSessions,
}

/// The outcome of deriving an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The account to store.
    pub account: Account,
    /// What to do besides storing it (nothing when neither state nor plan changed).
    pub effects: Vec<Effect>,
}

/// Where a status sits in Stripe's lifecycle: within one second, a snapshot never
/// replaces one of a higher rank (see the module docs).
pub fn rank(status: Option<SubscriptionStatus>, ended: bool) -> i16 {
    use SubscriptionStatus as S;
    if ended {
        return 5;
    }
    match status {
        None | Some(S::Incomplete) => 0,
        Some(S::Trialing) => 1,
        Some(S::Active) => 2,
        Some(S::PastDue | S::Paused) => 3,
        Some(S::Unpaid) => 4,
        Some(S::Canceled | S::IncompleteExpired) => 5,
    }
}

fn at(version: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(version, 0)
}

/// The subscription's row after `snap` (a deletion when `deleted`) at `version` (its
/// event's `created`); None when the stored row is newer: a later second, or the same
/// second and a higher rank.
pub fn merge(stored: Option<&Subscription>, snap: &Snapshot, deleted: bool, version: i64) -> Option<Subscription> {
    let ended = deleted || stored.is_some_and(|s| s.ended);
    let new_rank = rank(snap.status, ended);
    if let Some(s) = stored {
        if (version, new_rank) < (s.version, s.rank) {
            return None;
        }
    }
    Some(build(stored, snap, ended, version, new_rank))
}

/// The subscription's row after `snap` as the truth now (reconcile: Stripe's own
/// answer), applied whatever is stored, at a version no stored one exceeds.
pub fn force(stored: Option<&Subscription>, snap: &Snapshot, now: DateTime<Utc>) -> Subscription {
    let version = stored.map_or(0, |s| s.version).max(now.timestamp());
    build(stored, snap, false, version, rank(snap.status, false))
}

fn build(stored: Option<&Subscription>, snap: &Snapshot, ended: bool, version: i64, new_rank: i16) -> Subscription {
    let status_text = if ended && rank(snap.status, false) < 5 {
        SubscriptionStatus::Canceled.as_str().to_owned()
    } else {
        snap.status_text.clone()
    };
    let past_due = SubscriptionStatus::parse(&status_text) == Ok(SubscriptionStatus::PastDue);
    let past_due_since = past_due.then(|| {
        stored
            .filter(|s| s.status() == Some(SubscriptionStatus::PastDue))
            .and_then(|s| s.past_due_since)
            .or_else(|| at(version))
    });
    let (plan, interval, quantity, unit_amount_cents, currency) = match snap.plan {
        Some((p, i)) => (Some(p), Some(i), snap.quantity, snap.unit_amount_cents, snap.currency.clone()),
        // An unknown price never downgrades: the last known plan (and its price) stays.
        None => (
            stored.and_then(|s| s.plan),
            stored.and_then(|s| s.interval),
            stored.map_or(snap.quantity, |s| s.quantity),
            stored.and_then(|s| s.unit_amount_cents),
            stored.and_then(|s| s.currency.clone()),
        ),
    };
    Subscription {
        id: snap.id.clone(),
        customer: snap.customer.clone(),
        status_text,
        ended,
        plan,
        interval,
        unknown_prices: snap.unknown_prices.clone(),
        period_start: snap.period_start,
        period_end: snap.period_end,
        anchor: snap.anchor.or_else(|| stored.and_then(|s| s.anchor)).or(snap.period_start),
        trial_end: snap.trial_end,
        cancel_at_period_end: snap.cancel_at_period_end,
        cancel_at: snap.cancel_at,
        past_due_since: past_due_since.flatten(),
        version,
        rank: new_rank,
        quantity,
        unit_amount_cents,
        currency,
    }
}

/// What one subscription grants at `now` (the module's table); None for nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// ACTIVE, GRACE or SUSPENDED.
    pub state: AccountState,
    /// The subscription's plan.
    pub plan: PlanCode,
    /// End of grace, for GRACE.
    pub grace_until: Option<DateTime<Utc>>,
}

/// The standing `sub` grants at `now` with `grace_days` of grace.
pub fn standing(sub: &Subscription, now: DateTime<Utc>, grace_days: i64) -> Option<Standing> {
    use SubscriptionStatus as S;
    let plan = sub.plan?;
    if sub.ended || sub.cancels_at().is_some_and(|c| c <= now) {
        return None;
    }
    let (state, grace_until) = match sub.status()? {
        S::Trialing | S::Active => (AccountState::Active, None),
        S::PastDue => {
            let since = sub.past_due_since.or_else(|| at(sub.version)).unwrap_or(now);
            let until = since + Duration::days(grace_days);
            if until > now {
                (AccountState::Grace, Some(until))
            } else {
                (AccountState::Suspended, None)
            }
        }
        S::Unpaid => (AccountState::Suspended, None),
        S::Canceled | S::IncompleteExpired | S::Incomplete | S::Paused => return None,
    };
    Some(Standing { state, plan, grace_until })
}

/// How good a standing is for the user: usable (ACTIVE, GRACE) first, then the higher
/// plan, then ACTIVE before GRACE.
fn merit(s: &Standing) -> (bool, PlanCode, bool) {
    (matches!(s.state, AccountState::Active | AccountState::Grace), s.plan, s.state == AccountState::Active)
}

/// The account from all of the user's subscriptions at `now` (the best standing wins,
/// none is Free), with the effects of the change from `before`.
pub fn derive(before: &Account, subs: &[Subscription], now: DateTime<Utc>, grace_days: i64) -> Transition {
    let best = subs
        .iter()
        .filter_map(|s| standing(s, now, grace_days).map(|st| (s, st)))
        // Ties (same merit) go to the smaller id, whatever order the rows come in.
        .max_by(|(a, sa), (b, sb)| merit(sa).cmp(&merit(sb)).then_with(|| b.id.cmp(&a.id)));
    let trial_used = before.trial_used
        || subs.iter().any(|s| s.trial_end.is_some() || s.status() == Some(SubscriptionStatus::Trialing));
    let version = subs.iter().map(|s| s.version).max().unwrap_or(0).max(before.version);
    let account = match best {
        Some((sub, st)) => Account {
            trial_used,
            subscription_id: Some(sub.id.clone()),
            subscription_status: Some(sub.status_text.clone()),
            plan: st.plan,
            interval: sub.interval,
            state: st.state,
            grace_until: st.grace_until,
            current_period_start: sub.period_start,
            current_period_end: sub.period_end,
            anchor: sub.anchor,
            trial_end: sub.trial_end,
            cancel_at_period_end: sub.cancel_at_period_end,
            cancels_at: sub.cancels_at(),
            version,
            ..before.clone()
        },
        None => {
            // Nothing granted: Free. The newest subscription is still shown (canceled ...).
            let last = subs.iter().max_by_key(|s| (s.version, s.rank, s.id.clone()));
            Account {
                trial_used,
                subscription_id: last.map(|s| s.id.clone()),
                subscription_status: last.map(|s| s.status_text.clone()),
                plan: PlanCode::Free,
                interval: None,
                state: AccountState::Free,
                grace_until: None,
                current_period_start: None,
                current_period_end: None,
                anchor: None,
                trial_end: None,
                cancel_at_period_end: false,
                cancels_at: None,
                version,
                ..before.clone()
            }
        }
    };
    let effects = effects(before, &account);
    Transition { account, effects }
}

/// What a change of state or plan from `before` to `after` asks for.
fn effects(before: &Account, after: &Account) -> Vec<Effect> {
    let mut effects = Vec::new();
    if before.state == after.state && before.plan == after.plan {
        return effects;
    }
    effects.push(Effect::LogStateChange { from: before.state, to: after.state, plan: after.plan });
    let notice = match (before.state, after.state) {
        (AccountState::Grace | AccountState::Suspended, AccountState::Active) => {
            Some((EmailTemplate::Reactivated, String::new()))
        }
        (_, AccountState::Active) => Some((EmailTemplate::SubscriptionStarted, String::new())),
        (_, AccountState::Grace) => Some((
            EmailTemplate::PaymentFailed,
            format!(
                "Your plan stays active until {}.",
                after.grace_until.map(|g| g.format("%Y-%m-%d").to_string()).unwrap_or_default()
            ),
        )),
        (AccountState::Grace, AccountState::Suspended) => {
            Some((EmailTemplate::Suspended, "The grace period after the failed payment ended.".to_owned()))
        }
        (_, AccountState::Suspended) => {
            Some((EmailTemplate::Suspended, "Pay the open invoice in the billing portal to resume.".to_owned()))
        }
        (_, AccountState::Free) => None,
    };
    if let Some((template, detail)) = notice {
        effects.push(Effect::Notify { template, detail });
    }
    effects.push(Effect::RevokeTokens);
    if after.state == AccountState::Suspended {
        effects.push(Effect::CloseSessions);
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionStatus as S;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn snap(id: &str, status: SubscriptionStatus, plan: PlanCode) -> Snapshot {
        Snapshot {
            id: id.into(),
            customer: "cus_1".into(),
            status_text: status.as_str().into(),
            status: Some(status),
            plan: Some((plan, BillingInterval::Month)),
            unknown_prices: Vec::new(),
            period_start: Some(now()),
            period_end: Some(now() + Duration::days(30)),
            anchor: Some(now()),
            trial_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            quantity: 1,
            unit_amount_cents: Some(4900),
            currency: Some("eur".into()),
        }
    }

    fn sub(id: &str, status: SubscriptionStatus, plan: PlanCode, version: i64) -> Subscription {
        merge(None, &snap(id, status, plan), false, version).unwrap()
    }

    fn account(state: AccountState, plan: PlanCode) -> Account {
        let grace_until = (state == AccountState::Grace).then(|| now() + Duration::days(2));
        Account { state, plan, grace_until, version: 100, ..Account::default() }
    }

    /// The standing table, for every status, with and without a deletion.
    fn expected(status: SubscriptionStatus, deleted: bool) -> AccountState {
        match (status, deleted) {
            (_, true) => AccountState::Free,
            (S::Trialing | S::Active, _) => AccountState::Active,
            (S::PastDue, _) => AccountState::Grace,
            (S::Unpaid, _) => AccountState::Suspended,
            (S::Canceled | S::IncompleteExpired | S::Incomplete | S::Paused, _) => AccountState::Free,
        }
    }

    /// Every status from every account state: the table holds, the plan is Free exactly
    /// when the state is, tokens are revoked exactly when state or plan changed, sockets
    /// closed exactly on a change to SUSPENDED.
    #[test]
    fn every_status_from_every_state_follows_the_table() {
        for before_state in AccountState::ALL.iter().copied() {
            for status in SubscriptionStatus::ALL.iter().copied() {
                for deleted in [false, true] {
                    let before = account(
                        before_state,
                        if before_state == AccountState::Free { PlanCode::Free } else { PlanCode::Pro },
                    );
                    let version = now().timestamp();
                    let row = merge(None, &snap("sub_1", status, PlanCode::Pro), deleted, version).unwrap();
                    let t = derive(&before, &[row], now(), 7);
                    let want = expected(status, deleted);
                    assert_eq!(t.account.state, want, "{before_state:?} + {status:?} deleted={deleted}");
                    assert_eq!(t.account.plan == PlanCode::Free, want == AccountState::Free);
                    let changed = before.state != want || before.plan != t.account.plan;
                    assert_eq!(t.effects.contains(&Effect::RevokeTokens), changed, "{before_state:?} + {status:?}");
                    assert_eq!(t.effects.contains(&Effect::CloseSessions), changed && want == AccountState::Suspended);
                    assert_eq!(t.account.grace_until.is_some(), want == AccountState::Grace);
                    assert_eq!(t.account.version, version);
                    assert_eq!(t.account.subscription_id.as_deref(), Some("sub_1"));
                }
            }
        }
    }

    /// Every pair of statuses in both orders, at equal and at different seconds: the row
    /// ends on the later second's snapshot, and within one second on the higher rank.
    #[test]
    fn snapshots_apply_by_time_then_by_rank() {
        for a in SubscriptionStatus::ALL.iter().copied() {
            for b in SubscriptionStatus::ALL.iter().copied() {
                for (ta, tb) in [(100, 100), (100, 101), (101, 100)] {
                    let (first, second) = (snap("sub_1", a, PlanCode::Pro), snap("sub_1", b, PlanCode::Pro));
                    let row = merge(None, &first, false, ta).unwrap();
                    let end = merge(Some(&row), &second, false, tb).unwrap_or(row);
                    let want = match ta.cmp(&tb) {
                        std::cmp::Ordering::Less => b,
                        std::cmp::Ordering::Greater => a,
                        std::cmp::Ordering::Equal if rank(Some(b), false) >= rank(Some(a), false) => b,
                        std::cmp::Ordering::Equal => a,
                    };
                    assert_eq!(end.status(), Some(want), "{a:?}@{ta} then {b:?}@{tb}");
                }
            }
        }
    }

    /// Failure 1: `updated` (active) then `created` (incomplete), one second: active.
    #[test]
    fn an_older_looking_snapshot_of_the_same_second_never_undoes_a_later_one() {
        let active = merge(None, &snap("sub_1", S::Active, PlanCode::Pro), false, 100).unwrap();
        assert_eq!(merge(Some(&active), &snap("sub_1", S::Incomplete, PlanCode::Pro), false, 100), None);
        let t = derive(&Account::default(), std::slice::from_ref(&active), now(), 7);
        assert_eq!((t.account.state, t.account.plan), (AccountState::Active, PlanCode::Pro));
        // A deletion of the same second wins over anything, and nothing revives it.
        let gone = merge(Some(&active), &snap("sub_1", S::Canceled, PlanCode::Pro), true, 100).unwrap();
        for later in [100, 101] {
            let revived = merge(Some(&gone), &snap("sub_1", S::Active, PlanCode::Pro), false, later).unwrap();
            assert_eq!((revived.ended, revived.status_text.as_str()), (true, "canceled"));
        }
    }

    /// Failure 2: the best of several subscriptions wins; one ending leaves the other.
    #[test]
    fn the_best_subscription_wins_and_one_ending_leaves_the_others() {
        let pro = sub("sub_a", S::Active, PlanCode::Pro, 100);
        let starter = sub("sub_b", S::Active, PlanCode::Starter, 101);
        let t = derive(&Account::default(), &[starter.clone(), pro.clone()], now(), 7);
        assert_eq!(
            (t.account.state, t.account.plan, t.account.subscription_id.as_deref()),
            (AccountState::Active, PlanCode::Pro, Some("sub_a"))
        );
        let pro_gone = merge(Some(&pro), &snap("sub_a", S::Canceled, PlanCode::Pro), true, 102).unwrap();
        let t2 = derive(&t.account, &[pro_gone.clone(), starter.clone()], now(), 7);
        assert_eq!((t2.account.state, t2.account.plan), (AccountState::Active, PlanCode::Starter));
        // An unpaid one never beats a paid one, a paid one always beats an unpaid one.
        let unpaid = sub("sub_c", S::Unpaid, PlanCode::Scale, 103);
        let t3 = derive(&t2.account, &[unpaid.clone(), starter.clone()], now(), 7);
        assert_eq!((t3.account.state, t3.account.plan), (AccountState::Active, PlanCode::Starter));
        let t4 = derive(&t3.account, &[unpaid, pro_gone], now(), 7);
        assert_eq!((t4.account.state, t4.account.plan), (AccountState::Suspended, PlanCode::Scale));
        // Row order does not matter.
        let a = derive(
            &Account::default(),
            &[sub("sub_x", S::Active, PlanCode::Pro, 1), sub("sub_y", S::Active, PlanCode::Pro, 1)],
            now(),
            7,
        );
        let b = derive(
            &Account::default(),
            &[sub("sub_y", S::Active, PlanCode::Pro, 1), sub("sub_x", S::Active, PlanCode::Pro, 1)],
            now(),
            7,
        );
        assert_eq!(a, b);
    }

    /// Failure 4: an ended subscription is Free, not suspended; a cancellation at the
    /// period's end keeps the plan until then, and says when.
    #[test]
    fn cancellation_returns_to_free_and_cancel_at_period_end_keeps_the_plan_until_then() {
        let before = account(AccountState::Active, PlanCode::Pro);
        for (status, deleted) in [(S::Canceled, true), (S::Canceled, false), (S::IncompleteExpired, false)] {
            let row = sub("sub_1", S::Active, PlanCode::Pro, 100);
            let ended = merge(Some(&row), &snap("sub_1", status, PlanCode::Pro), deleted, 101).unwrap();
            let t = derive(&before, &[ended], now(), 7);
            assert_eq!((t.account.state, t.account.plan), (AccountState::Free, PlanCode::Free), "{status:?}");
            assert_eq!(t.account.subscription_status.as_deref(), Some(status.as_str()));
            assert!(!t.effects.contains(&Effect::CloseSessions));
            assert!(t.effects.contains(&Effect::RevokeTokens));
        }
        let mut s = snap("sub_1", S::Active, PlanCode::Pro);
        s.cancel_at_period_end = true;
        let row = merge(None, &s, false, 100).unwrap();
        let t = derive(&before, std::slice::from_ref(&row), now(), 7);
        assert_eq!((t.account.state, t.account.plan), (AccountState::Active, PlanCode::Pro));
        assert_eq!(t.account.cancels_at, s.period_end);
        assert!(t.effects.is_empty());
        let after = derive(&t.account, &[row], now() + Duration::days(31), 7);
        assert_eq!((after.account.state, after.account.plan), (AccountState::Free, PlanCode::Free));
    }

    /// Failure 3: an unknown price keeps the known plan; never known grants nothing.
    #[test]
    fn an_unknown_price_never_downgrades_and_an_unknown_status_grants_nothing() {
        let row = sub("sub_1", S::Active, PlanCode::Scale, 100);
        let mut s = snap("sub_1", S::Active, PlanCode::Scale);
        s.plan = None;
        s.unknown_prices = vec!["price_addon".into()];
        let kept = merge(Some(&row), &s, false, 101).unwrap();
        assert_eq!(kept.plan, Some(PlanCode::Scale));
        assert_eq!(derive(&Account::default(), &[kept], now(), 7).account.plan, PlanCode::Scale);
        let never = merge(None, &s, false, 101).unwrap();
        assert_eq!(derive(&Account::default(), &[never], now(), 7).account.state, AccountState::Free);
        let mut odd = snap("sub_1", S::Active, PlanCode::Scale);
        odd.status = None;
        odd.status_text = "something_new".into();
        let t = derive(&Account::default(), &[merge(None, &odd, false, 1).unwrap()], now(), 7);
        assert_eq!((t.account.state, t.account.plan), (AccountState::Free, PlanCode::Free));
        assert_eq!(t.account.subscription_status.as_deref(), Some("something_new"));
    }

    /// Grace runs from Stripe's time of the first past-due snapshot, keeps its end while
    /// it lasts, and ends in a suspension the sweeper derives with no event.
    #[test]
    fn grace_runs_from_the_first_past_due_snapshot_and_ends_in_suspension() {
        let active = sub("sub_1", S::Active, PlanCode::Pro, now().timestamp() - 100);
        let due = merge(Some(&active), &snap("sub_1", S::PastDue, PlanCode::Pro), false, now().timestamp()).unwrap();
        let t = derive(&account(AccountState::Active, PlanCode::Pro), std::slice::from_ref(&due), now(), 7);
        assert_eq!(t.account.grace_until, Some(now() + Duration::days(7)));
        assert!(t.effects.contains(&Effect::Notify {
            template: EmailTemplate::PaymentFailed,
            detail: format!("Your plan stays active until {}.", (now() + Duration::days(7)).format("%Y-%m-%d")),
        }));
        let again =
            merge(Some(&due), &snap("sub_1", S::PastDue, PlanCode::Pro), false, now().timestamp() + 3600).unwrap();
        assert_eq!(again.past_due_since, due.past_due_since);
        let t2 = derive(&t.account, std::slice::from_ref(&again), now() + Duration::days(3), 7);
        assert!(t2.effects.is_empty());
        let t3 = derive(&t2.account, std::slice::from_ref(&again), now() + Duration::days(8), 7);
        assert_eq!(t3.account.state, AccountState::Suspended);
        assert!(t3.effects.contains(&Effect::CloseSessions));
        let paid = merge(Some(&again), &snap("sub_1", S::Active, PlanCode::Pro), false, now().timestamp() + 9 * 86_400)
            .unwrap();
        let back = derive(&t3.account, &[paid], now() + Duration::days(9), 7);
        assert!(back.effects.contains(&Effect::Notify { template: EmailTemplate::Reactivated, detail: String::new() }));
        // A past-due event that arrives after its grace would have ended suspends at once.
        let late =
            merge(None, &snap("sub_1", S::PastDue, PlanCode::Pro), false, now().timestamp() - 8 * 86_400).unwrap();
        assert_eq!(derive(&Account::default(), &[late], now(), 7).account.state, AccountState::Suspended);
    }

    #[test]
    fn a_trial_is_remembered() {
        let t = derive(&Account::default(), &[sub("sub_1", S::Trialing, PlanCode::Pro, 1)], now(), 7);
        assert!(t.account.trial_used);
        let later = derive(&t.account, &[sub("sub_1", S::Canceled, PlanCode::Pro, 2)], now(), 7);
        assert!(later.account.trial_used);
    }

    #[test]
    fn reconcile_forces_the_truth_over_anything_stored() {
        let gone = merge(None, &snap("sub_1", S::Canceled, PlanCode::Pro), true, now().timestamp() + 50).unwrap();
        let truth = force(Some(&gone), &snap("sub_1", S::Active, PlanCode::Pro), now());
        assert_eq!((truth.status(), truth.ended, truth.version), (Some(S::Active), false, now().timestamp() + 50));
    }
}
