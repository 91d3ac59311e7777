use crate::rls::{CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// Staff tool "extend a trial" (issue 14, item 4): an admin's request is a row of
/// `support_trial_extensions`, written in the admin's transaction with its audit (the
/// access log and the user's activity log); the trial end it asks Stripe for is fixed
/// there. A background task claims due rows (`priv.trial_extensions_claim`, leased,
/// `FOR UPDATE SKIP LOCKED`), calls Stripe holding no transaction (idempotency key: the
/// row's id) and records the outcome (`priv.trial_extensions_record`, fenced on the
/// attempt). The user reads its own rows; admins read all and insert as themselves.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000102_queue_trial_extensions"
    }
}

fn up_sql() -> String {
    let me = CURRENT_USER_ID;
    format!(
        "CREATE TABLE support_trial_extensions (
           id               uuid NOT NULL,
           user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
           requested_by     uuid NOT NULL,
           subscription_id  text NOT NULL CHECK (length(subscription_id) BETWEEN 1 AND 255),
           days             int NOT NULL CHECK (days BETWEEN 1 AND 90),
           -- The trial end asked for (the end it had, or now, plus the days).
           trial_end        timestamptz NOT NULL,
           reason           text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
           state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
           attempts         int NOT NULL DEFAULT 0,
           next_attempt_at  timestamptz NOT NULL DEFAULT now(),
           leased_until     timestamptz,
           last_error       text CHECK (length(last_error) <= 1000),
           created_at       timestamptz NOT NULL DEFAULT now(),
           done_at          timestamptz,
           PRIMARY KEY (user_id, id)
         );
         CREATE INDEX support_trial_extensions_user_idx ON support_trial_extensions (user_id, created_at DESC, id DESC);
         CREATE INDEX support_trial_extensions_due_idx ON support_trial_extensions (next_attempt_at)
           WHERE state = 'pending';
         ALTER TABLE support_trial_extensions ENABLE ROW LEVEL SECURITY;
         ALTER TABLE support_trial_extensions FORCE ROW LEVEL SECURITY;
         CREATE POLICY support_trial_extensions_owner_read ON support_trial_extensions FOR SELECT TO {USER_ROLES}
           USING (user_id = {me});
         CREATE POLICY support_trial_extensions_admin_read ON support_trial_extensions FOR SELECT TO plinth_admin
           USING ({me} IS NOT NULL);
         CREATE POLICY support_trial_extensions_admin_insert ON support_trial_extensions FOR INSERT TO plinth_admin
           WITH CHECK ({me} IS NOT NULL AND requested_by = {me} AND state = 'pending' AND attempts = 0
                       AND leased_until IS NULL AND done_at IS NULL
                       AND EXISTS (SELECT 1 FROM users u WHERE u.id = support_trial_extensions.user_id));
         GRANT SELECT ON support_trial_extensions TO {USER_ROLES};
         GRANT INSERT ON support_trial_extensions TO plinth_admin;

         -- Claims up to `max_rows` due requests, leased for `lease_ms`, their attempt counted.
         CREATE FUNCTION priv.trial_extensions_claim(max_rows int, lease_ms bigint)
           RETURNS TABLE (id uuid, user_id uuid, subscription_id text, trial_end timestamptz, attempts int)
           LANGUAGE sql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
             WITH due AS (
               SELECT e.user_id, e.id FROM public.support_trial_extensions e
                WHERE e.state = 'pending' AND e.next_attempt_at <= now()
                  AND (e.leased_until IS NULL OR e.leased_until <= now())
                ORDER BY e.next_attempt_at
                LIMIT max_rows
                FOR UPDATE SKIP LOCKED)
             UPDATE public.support_trial_extensions e
                SET attempts = e.attempts + 1, leased_until = now() + make_interval(secs => lease_ms / 1000.0)
               FROM due
              WHERE e.user_id = due.user_id AND e.id = due.id
             RETURNING e.id, e.user_id, e.subscription_id, e.trial_end, e.attempts
           $$;

         -- Records an attempt's outcome (`done`, `retry` after `p_delay_ms`, `failed`) if the
         -- row is still the one that attempt claimed.
         CREATE FUNCTION priv.trial_extensions_record(p_user uuid, p_id uuid, p_attempts int, p_outcome text,
                                                      p_reason text, p_delay_ms bigint)
           RETURNS boolean
           LANGUAGE plpgsql VOLATILE SECURITY DEFINER
           SET search_path = pg_catalog, pg_temp
           AS $$
           BEGIN
             IF p_outcome NOT IN ('done', 'retry', 'failed') THEN
               RAISE EXCEPTION 'unknown outcome %', p_outcome USING ERRCODE = '22023';
             END IF;
             UPDATE public.support_trial_extensions e
                SET state = CASE p_outcome WHEN 'retry' THEN 'pending' ELSE p_outcome END,
                    leased_until = NULL,
                    done_at = CASE WHEN p_outcome = 'done' THEN now() END,
                    last_error = CASE WHEN p_outcome = 'done' THEN NULL ELSE left(p_reason, 1000) END,
                    next_attempt_at = CASE WHEN p_outcome = 'retry'
                                           THEN now() + make_interval(secs => greatest(p_delay_ms, 0) / 1000.0)
                                           ELSE e.next_attempt_at END
              WHERE e.user_id = p_user AND e.id = p_id AND e.attempts = p_attempts AND e.state = 'pending';
             RETURN FOUND;
           END
           $$;
         REVOKE ALL ON FUNCTION priv.trial_extensions_claim(int, bigint),
           priv.trial_extensions_record(uuid, uuid, int, text, text, bigint) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION priv.trial_extensions_claim(int, bigint),
           priv.trial_extensions_record(uuid, uuid, int, text, text, bigint) TO plinth_system;"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(&up_sql()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.trial_extensions_record(uuid, uuid, int, text, text, bigint);
                 DROP FUNCTION IF EXISTS priv.trial_extensions_claim(int, bigint);
                 DROP TABLE IF EXISTS support_trial_extensions;",
            )
            .await?;
        Ok(())
    }
}
