//! The subscription state machine: a pure function from (stored account, what Stripe
//! says) to (new account, effects). No I/O here; `webhook` and `reconcile` write the
//! account and carry out the effects in one transaction.
//!
//! Stripe status → account state (Stripe's statuses:
//! <https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses>):
//!
//! | Stripe status | account state | plan shown |
//! |---|---|---|
//! | trialing, active | ACTIVE | the subscription's |
//! | past_due | GRACE (until now + grace days, kept while it lasts) | the subscription's |
//! | unpaid, canceled, incomplete_expired, paused, deleted | SUSPENDED | the subscription's |
//! | incomplete, or a status Stripe adds later | FREE | Free |
//!
//! A GRACE whose end passed becomes SUSPENDED (`expire_grace`). An event older than the
//! account's version changes nothing.
use super::store::Account;
use crate::model::{AccountState, BillingInterval, EmailTemplate, PlanCode, SubscriptionStatus};
use chrono::{DateTime, Duration, Utc};

/// What a subscription event (or Stripe's list, in reconcile) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `sub_...`.
    pub id: String,
    /// Its status, as Stripe spelled it (stored as is).
    pub status_text: String,
    /// Its status in the vocabulary; None for one Stripe added later.
    pub status: Option<SubscriptionStatus>,
    /// The plan and interval of its price; None when the price is not in the catalog.
    pub plan: Option<(PlanCode, BillingInterval)>,
    /// Current period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub period_end: Option<DateTime<Utc>>,
    /// End of the trial.
    pub trial_end: Option<DateTime<Utc>>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
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
    /// Notify the user (in-app and e-mail) with `template`, about the subscription's
    /// plan, adding `detail`.
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

/// The outcome of applying a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The account to store.
    pub account: Account,
    /// The plan the user is shown (and their tokens carry).
    pub user_plan: PlanCode,
    /// What to do besides storing it.
    pub effects: Vec<Effect>,
}

/// The account state a Stripe status gives (see the module's table).
pub fn state_of(status: Option<SubscriptionStatus>) -> AccountState {
    use SubscriptionStatus as S;
    match status {
        Some(S::Trialing | S::Active) => AccountState::Active,
        Some(S::PastDue) => AccountState::Grace,
        Some(S::Unpaid | S::Canceled | S::IncompleteExpired | S::Paused) => AccountState::Suspended,
        // The first payment is still pending: nothing granted yet.
        Some(S::Incomplete) | None => AccountState::Free,
    }
}

/// Applies `snap` (a deletion when `deleted`) at `version` (the event's `created`) to
/// `before`; None when the event is older than what is stored.
pub fn apply(
    before: &Account,
    snap: &Snapshot,
    deleted: bool,
    version: i64,
    now: DateTime<Utc>,
    grace_days: i64,
) -> Option<Transition> {
    if version < before.version {
        return None;
    }
    let (status_text, status) = if deleted {
        (SubscriptionStatus::Canceled.as_str().to_owned(), Some(SubscriptionStatus::Canceled))
    } else {
        (snap.status_text.clone(), snap.status)
    };
    let (plan, interval) = match snap.plan {
        Some((p, i)) => (p, Some(i)),
        None => (before.plan, before.interval),
    };
    let state = state_of(status);
    let grace_until = match (state, before.state) {
        (AccountState::Grace, AccountState::Grace) => before.grace_until,
        (AccountState::Grace, _) => Some(now + Duration::days(grace_days)),
        _ => None,
    };
    let account = Account {
        customer: before.customer.clone(),
        trial_used: before.trial_used || snap.trial_end.is_some() || status == Some(SubscriptionStatus::Trialing),
        subscription_id: Some(snap.id.clone()),
        subscription_status: Some(status_text),
        plan,
        interval,
        state,
        grace_until,
        current_period_start: snap.period_start,
        current_period_end: snap.period_end,
        trial_end: snap.trial_end,
        cancel_at_period_end: snap.cancel_at_period_end,
        version,
    };
    let user_plan = if state == AccountState::Free { PlanCode::Free } else { plan };
    let mut effects = Vec::new();
    if before.state != state || before.plan != user_plan {
        effects.push(Effect::LogStateChange { from: before.state, to: state, plan: user_plan });
        let notice = match (before.state, state) {
            (AccountState::Grace | AccountState::Suspended, AccountState::Active) => {
                Some((EmailTemplate::Reactivated, String::new()))
            }
            (_, AccountState::Active) => Some((EmailTemplate::SubscriptionStarted, String::new())),
            (_, AccountState::Grace) => Some((
                EmailTemplate::PaymentFailed,
                format!(
                    "Your plan stays active until {}.",
                    grace_until.map(|g| g.format("%Y-%m-%d").to_string()).unwrap_or_default()
                ),
            )),
            (_, AccountState::Suspended) => {
                Some((EmailTemplate::Suspended, "Pay the open invoice in the billing portal to resume.".to_owned()))
            }
            (_, AccountState::Free) => None,
        };
        if let Some((template, detail)) = notice {
            effects.push(Effect::Notify { template, detail });
        }
        effects.push(Effect::RevokeTokens);
        if state == AccountState::Suspended {
            effects.push(Effect::CloseSessions);
        }
    }
    Some(Transition { account, user_plan, effects })
}

/// Suspends an account whose grace period ended by `now`; None otherwise.
pub fn expire_grace(before: &Account, now: DateTime<Utc>) -> Option<Transition> {
    if before.state != AccountState::Grace || before.grace_until.is_none_or(|g| g > now) {
        return None;
    }
    let account = Account { state: AccountState::Suspended, grace_until: None, ..before.clone() };
    Some(Transition {
        account,
        user_plan: before.plan,
        effects: vec![
            Effect::LogStateChange { from: AccountState::Grace, to: AccountState::Suspended, plan: before.plan },
            Effect::Notify {
                template: EmailTemplate::Suspended,
                detail: "The grace period after the failed payment ended.".into(),
            },
            Effect::RevokeTokens,
            Effect::CloseSessions,
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn snap(status: SubscriptionStatus) -> Snapshot {
        Snapshot {
            id: "sub_1".into(),
            status_text: status.as_str().into(),
            status: Some(status),
            plan: Some((PlanCode::Pro, BillingInterval::Month)),
            period_start: Some(now()),
            period_end: Some(now() + Duration::days(30)),
            trial_end: None,
            cancel_at_period_end: false,
        }
    }

    fn account(state: AccountState, plan: PlanCode) -> Account {
        let grace_until = (state == AccountState::Grace).then(|| now() + Duration::days(2));
        Account { state, plan, grace_until, version: 100, ..Account::default() }
    }

    /// Every status from every state: the state table holds, the shown plan is Free
    /// exactly when the state is, and tokens are revoked exactly when something the
    /// token carries changed.
    #[test]
    fn every_status_from_every_state_follows_the_table() {
        for before_state in AccountState::ALL.iter().copied() {
            for status in SubscriptionStatus::ALL.iter().copied() {
                for deleted in [false, true] {
                    let before = account(
                        before_state,
                        if before_state == AccountState::Free { PlanCode::Free } else { PlanCode::Pro },
                    );
                    let t = apply(&before, &snap(status), deleted, 200, now(), 7).expect("a newer event applies");
                    let expected = if deleted { AccountState::Suspended } else { state_of(Some(status)) };
                    assert_eq!(t.account.state, expected, "{before_state:?} + {status:?} deleted={deleted}");
                    assert_eq!(t.user_plan == PlanCode::Free, expected == AccountState::Free);
                    let changed = before.state != expected || before.plan != t.user_plan;
                    assert_eq!(t.effects.contains(&Effect::RevokeTokens), changed, "{before_state:?} + {status:?}");
                    assert_eq!(
                        t.effects.contains(&Effect::CloseSessions),
                        changed && expected == AccountState::Suspended
                    );
                    assert_eq!(t.account.grace_until.is_some(), expected == AccountState::Grace);
                    assert_eq!(t.account.version, 200);
                }
            }
        }
    }

    #[test]
    fn an_older_event_changes_nothing_and_an_equal_one_applies() {
        let before = account(AccountState::Active, PlanCode::Pro);
        assert_eq!(apply(&before, &snap(SubscriptionStatus::Canceled), false, 99, now(), 7), None);
        assert!(apply(&before, &snap(SubscriptionStatus::Active), false, 100, now(), 7).is_some());
    }

    #[test]
    fn grace_keeps_its_end_and_notices_name_it() {
        let first = apply(
            &account(AccountState::Active, PlanCode::Pro),
            &snap(SubscriptionStatus::PastDue),
            false,
            200,
            now(),
            7,
        )
        .unwrap();
        assert_eq!(first.account.grace_until, Some(now() + Duration::days(7)));
        assert!(first.effects.contains(&Effect::Notify {
            template: EmailTemplate::PaymentFailed,
            detail: format!("Your plan stays active until {}.", (now() + Duration::days(7)).format("%Y-%m-%d")),
        }));
        let again = apply(&first.account, &snap(SubscriptionStatus::PastDue), false, 300, now() + Duration::days(3), 7)
            .unwrap();
        assert_eq!(again.account.grace_until, first.account.grace_until);
        assert!(again.effects.is_empty());
        let back = apply(&again.account, &snap(SubscriptionStatus::Active), false, 400, now(), 7).unwrap();
        assert!(back.effects.contains(&Effect::Notify { template: EmailTemplate::Reactivated, detail: String::new() }));
    }

    #[test]
    fn an_unknown_price_keeps_the_plan_and_an_unknown_status_is_free() {
        let before = account(AccountState::Active, PlanCode::Scale);
        let mut s = snap(SubscriptionStatus::Active);
        s.plan = None;
        assert_eq!(apply(&before, &s, false, 200, now(), 7).unwrap().account.plan, PlanCode::Scale);
        s.status = None;
        s.status_text = "something_new".into();
        let t = apply(&before, &s, false, 200, now(), 7).unwrap();
        assert_eq!((t.account.state, t.user_plan), (AccountState::Free, PlanCode::Free));
        assert_eq!(t.account.subscription_status.as_deref(), Some("something_new"));
    }

    #[test]
    fn a_trial_is_remembered() {
        let t = apply(&Account::default(), &snap(SubscriptionStatus::Trialing), false, 1, now(), 7).unwrap();
        assert!(t.account.trial_used);
        let later = apply(&t.account, &snap(SubscriptionStatus::Canceled), false, 2, now(), 7).unwrap();
        assert!(later.account.trial_used);
    }

    #[test]
    fn grace_expires_only_after_its_end() {
        let before = account(AccountState::Grace, PlanCode::Pro);
        assert_eq!(expire_grace(&before, now()), None);
        let t = expire_grace(&before, now() + Duration::days(3)).unwrap();
        assert_eq!((t.account.state, t.account.grace_until), (AccountState::Suspended, None));
        assert!(t.effects.contains(&Effect::CloseSessions));
        assert_eq!(expire_grace(&account(AccountState::Active, PlanCode::Pro), now() + Duration::days(30)), None);
    }
}
