use sea_orm_migration::prelude::*;

/// Erasing an account keeps its subscription history, pseudonymized, so that past MRR
/// and its movements do not change when a former customer is erased (issue 15).
///
/// Before, `priv.erase_account` deleted the history with every other row of the account,
/// so MRR, churn and cohorts of months long closed changed after each erasure. Now, the
/// rows stay with their amounts, plans and times, but lose their link to the person:
///
/// - `user_id` becomes a pseudonym, a UUID made from the same pseudonym the invoice
///   archive uses (an HMAC of the user id under the server's secret,
///   `accounts::privacy::Privacy::pseudonym`), hashed again with MD5 into a UUID's
///   shape: one customer's rows still group together (movements are per customer), no
///   account has that id, and without the server's secret nobody can tell whose it was;
/// - `subscription_id` (Stripe's, which Stripe could link to the customer) becomes a
///   SHA-256 of the pseudonym and that id: each subscription's rows still group
///   together;
/// - a subscription still paying in the history ends at the erasure (a `canceled` row,
///   MRR 0): the sweeper has just cancelled it at Stripe, and the webhook that says so
///   will find no account to apply to, so without this row the erased customer would
///   pay forever in the metrics.
///
/// The history's foreign key to `users` goes (its rows outlive their account by
/// design); `priv.erase_account` is the only statement that deletes users. The old
/// erasure is kept, renamed `priv.erase_account_rows` and callable by its owner only
/// (the new `priv.erase_account` calls it after pseudonymizing), so its body is not
/// written out a second time.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000203_pseudonymize_subscription_history"
    }
}

const SQL: &str = r#"
ALTER TABLE billing_subscription_history DROP CONSTRAINT billing_subscription_history_user_id_fkey;

ALTER FUNCTION priv.erase_account(uuid, text, timestamptz) RENAME TO erase_account_rows;
REVOKE ALL ON FUNCTION priv.erase_account_rows(uuid, text, timestamptz) FROM PUBLIC, plinth_system;

-- Erases a marked account (see m20261202_000303_begin_erasure), its subscription
-- history first pseudonymized under `p_subject` and closed.
CREATE FUNCTION priv.erase_account(p_user uuid, p_subject text, at timestamptz)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
  DECLARE pseudonym uuid := md5('subscription-history:' || p_subject)::uuid;
  BEGIN
    PERFORM 1 FROM public.users u
      WHERE u.id = p_user AND u.erasure_started_at IS NOT NULL
      FOR UPDATE;
    IF NOT FOUND THEN
      RETURN false;
    END IF;
    INSERT INTO public.billing_subscription_history (user_id, subscription_id, effective_at, plan,
        billing_interval, status, ended, quantity, unit_amount_cents, currency, mrr_cents)
    SELECT l.user_id, l.subscription_id, greatest(now(), l.effective_at), l.plan, l.billing_interval,
           'canceled', true, l.quantity, l.unit_amount_cents, l.currency, 0
      FROM (SELECT DISTINCT ON (h.subscription_id) h.*
              FROM public.billing_subscription_history h
             WHERE h.user_id = p_user
             ORDER BY h.subscription_id, h.effective_at DESC, h.id DESC) l
     WHERE l.mrr_cents > 0;
    UPDATE public.billing_subscription_history h
       SET user_id = pseudonym,
           subscription_id = 'erased_' || encode(sha256(convert_to(p_subject || '/' || h.subscription_id, 'UTF8')), 'hex')
     WHERE h.user_id = p_user;
    RETURN priv.erase_account_rows(p_user, p_subject, at);
  END
  $$;
REVOKE ALL ON FUNCTION priv.erase_account(uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION priv.erase_account(uuid, text, timestamptz) TO plinth_system;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.erase_account(uuid, text, timestamptz);
                 ALTER FUNCTION priv.erase_account_rows(uuid, text, timestamptz) RENAME TO erase_account;
                 GRANT EXECUTE ON FUNCTION priv.erase_account(uuid, text, timestamptz) TO plinth_system;
                 DELETE FROM billing_subscription_history h WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id);
                 ALTER TABLE billing_subscription_history ADD CONSTRAINT billing_subscription_history_user_id_fkey
                   FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;",
            )
            .await?;
        Ok(())
    }
}
