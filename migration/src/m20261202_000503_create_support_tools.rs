use crate::rls::CURRENT_USER_ID;
use sea_orm_migration::prelude::*;

/// Staff tools (issue 14, item 4): what staff read of an account, and the privileged
/// steps admins take on one.
///
/// Reads go through role-specific policies, as the inbox does: admins read every
/// account's billing state, usage, jobs and their logs, invoices, notifications and the
/// e-mails sent to it; support reads them only for an account with a ticket or an
/// unexpired grant (the rule `users_support_read` already applies). Every staff policy
/// needs a signed-in staff id, so an unset id fails closed.
///
/// Writes: support and admins may send a new verification link (a `verify_email`
/// one-time token and its e-mail, through insert policies limited to that purpose and
/// the same rule). Suspending, lifting a suspension, signing an account out and
/// crediting a quota are `priv.admin_*` SECURITY DEFINER functions executable by
/// `plinth_admin` only, each checking again that the caller is an admin and filtering on
/// its arguments alone.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000503_create_support_tools"
    }
}

/// Tables whose rows staff read for an account summary.
const SUMMARY_TABLES: &[&str] =
    &["billing_accounts", "quota_usage", "photos", "jobs", "job_logs", "invoices", "notifications", "email_outbox"];

fn support_may_read(col: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM tickets t WHERE t.user_id = {col})
          OR EXISTS (SELECT 1 FROM support_access_grants g WHERE g.user_id = {col}
                     AND g.revoked_at IS NULL AND g.expires_at > now()))"
    )
}

/// The check each admin function starts with: the caller is a signed-in admin.
const ADMIN_CHECK: &str = "IF NULLIF(current_setting('plinth.user_id', true), '')::uuid IS NULL
       OR NOT EXISTS (SELECT 1 FROM public.users u
                      WHERE u.id = NULLIF(current_setting('plinth.user_id', true), '')::uuid AND u.role = 'admin') THEN
       RAISE EXCEPTION 'only an admin may do this' USING ERRCODE = '42501';
     END IF;";

fn up_sql() -> String {
    let me = CURRENT_USER_ID;
    let mut sql = String::from(
        "ALTER TABLE users
           ADD COLUMN suspended_at timestamptz,
           ADD COLUMN suspension_reason text CHECK (length(suspension_reason) BETWEEN 1 AND 500),
           ADD CONSTRAINT users_suspension_has_reason CHECK (suspended_at IS NULL OR suspension_reason IS NOT NULL);
         -- A credit for the period: the counter may reach its plan limit plus this.
         ALTER TABLE quota_usage ADD COLUMN credit bigint NOT NULL DEFAULT 0 CHECK (credit >= 0);\n",
    );
    for t in SUMMARY_TABLES {
        let rule = support_may_read(&format!("{t}.user_id"));
        sql.push_str(&format!(
            "GRANT SELECT ON {t} TO plinth_support, plinth_admin;
             CREATE POLICY {t}_admin_read ON {t} FOR SELECT TO plinth_admin USING ({me} IS NOT NULL);
             CREATE POLICY {t}_support_read ON {t} FOR SELECT TO plinth_support USING ({me} IS NOT NULL AND {rule});\n"
        ));
    }
    let tokens_rule = support_may_read("one_time_tokens.user_id");
    let outbox_rule = support_may_read("email_outbox.user_id");
    sql.push_str(&format!(
        "CREATE POLICY one_time_tokens_staff_verify ON one_time_tokens FOR INSERT TO plinth_support, plinth_admin
           WITH CHECK ({me} IS NOT NULL AND purpose = 'verify_email'
                       AND (current_setting('role') = 'plinth_admin' OR {tokens_rule}));
         CREATE POLICY email_outbox_staff_verify ON email_outbox FOR INSERT TO plinth_support, plinth_admin
           WITH CHECK ({me} IS NOT NULL AND template = 'verify_email'
                       AND (current_setting('role') = 'plinth_admin' OR {outbox_rule}));
         GRANT INSERT ON one_time_tokens, email_outbox TO plinth_support, plinth_admin;

         -- Suspends (or lifts the suspension of) another account; on suspension its access
         -- tokens are refused from now and its sessions end. The ended sessions' ids.
         CREATE FUNCTION priv.admin_set_suspension(target uuid, suspend boolean, reason text)
           RETURNS TABLE (session_id uuid)
           LANGUAGE plpgsql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
           BEGIN
             {ADMIN_CHECK}
             IF target = NULLIF(current_setting('plinth.user_id', true), '')::uuid THEN
               RAISE EXCEPTION 'an admin does not suspend itself' USING ERRCODE = '42501';
             END IF;
             IF NOT suspend THEN
               UPDATE public.users SET suspended_at = NULL, suspension_reason = NULL WHERE id = target;
               RETURN;
             END IF;
             UPDATE public.users SET suspended_at = now(), suspension_reason = reason WHERE id = target;
             IF NOT FOUND THEN
               RETURN;
             END IF;
             INSERT INTO public.token_revocations (user_id, revoked_before) VALUES (target, now())
               ON CONFLICT (user_id) DO UPDATE
               SET revoked_before = greatest(public.token_revocations.revoked_before, EXCLUDED.revoked_before);
             RETURN QUERY
               UPDATE public.sessions s SET revoked_at = now(), revoked_reason = 'suspended'
                WHERE s.user_id = target AND s.revoked_at IS NULL
               RETURNING s.id;
           END
           $$;
         -- Ends every session of an account and refuses its access tokens from now.
         CREATE FUNCTION priv.admin_revoke_sessions(target uuid)
           RETURNS TABLE (session_id uuid)
           LANGUAGE plpgsql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
           BEGIN
             {ADMIN_CHECK}
             INSERT INTO public.token_revocations (user_id, revoked_before)
               SELECT u.id, now() FROM public.users u WHERE u.id = target
               ON CONFLICT (user_id) DO UPDATE
               SET revoked_before = greatest(public.token_revocations.revoked_before, EXCLUDED.revoked_before);
             RETURN QUERY
               UPDATE public.sessions s SET revoked_at = now(), revoked_reason = 'revoked_by_support'
                WHERE s.user_id = target AND s.revoked_at IS NULL
               RETURNING s.id;
           END
           $$;
         -- Adds `p_amount` to an account's credit of `p_metric` for the period starting at
         -- `p_period_start`; the credit now (NULL when there is no such account).
         CREATE FUNCTION priv.admin_credit_quota(p_target uuid, p_metric text, p_period_start timestamptz, p_amount bigint)
           RETURNS bigint
           LANGUAGE plpgsql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
           DECLARE total bigint;
           BEGIN
             {ADMIN_CHECK}
             IF p_amount < 1 THEN
               RAISE EXCEPTION 'a credit is positive' USING ERRCODE = '22023';
             END IF;
             INSERT INTO public.quota_usage AS q (user_id, metric, period_start, used, credit)
               SELECT u.id, p_metric, p_period_start, 0, p_amount
                 FROM public.users u WHERE u.id = p_target
               ON CONFLICT (user_id, metric, period_start)
               DO UPDATE SET credit = q.credit + EXCLUDED.credit, updated_at = now()
               RETURNING q.credit INTO total;
             RETURN total;
           END
           $$;
         REVOKE ALL ON FUNCTION priv.admin_set_suspension(uuid, boolean, text), priv.admin_revoke_sessions(uuid),
           priv.admin_credit_quota(uuid, text, timestamptz, bigint) FROM PUBLIC;
         GRANT USAGE ON SCHEMA priv TO plinth_admin;
         GRANT EXECUTE ON FUNCTION priv.admin_set_suspension(uuid, boolean, text), priv.admin_revoke_sessions(uuid),
           priv.admin_credit_quota(uuid, text, timestamptz, bigint) TO plinth_admin;"
    ));
    sql
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(&up_sql()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = String::from(
            "DROP FUNCTION IF EXISTS priv.admin_credit_quota(uuid, text, timestamptz, bigint);
             DROP FUNCTION IF EXISTS priv.admin_revoke_sessions(uuid);
             DROP FUNCTION IF EXISTS priv.admin_set_suspension(uuid, boolean, text);
             DROP POLICY IF EXISTS email_outbox_staff_verify ON email_outbox;
             DROP POLICY IF EXISTS one_time_tokens_staff_verify ON one_time_tokens;\n",
        );
        for t in SUMMARY_TABLES {
            sql.push_str(&format!(
                "DROP POLICY IF EXISTS {t}_support_read ON {t};
                 DROP POLICY IF EXISTS {t}_admin_read ON {t};\n"
            ));
        }
        sql.push_str(
            "ALTER TABLE quota_usage DROP COLUMN IF EXISTS credit;
             ALTER TABLE users DROP CONSTRAINT IF EXISTS users_suspension_has_reason,
               DROP COLUMN IF EXISTS suspension_reason, DROP COLUMN IF EXISTS suspended_at;",
        );
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}
