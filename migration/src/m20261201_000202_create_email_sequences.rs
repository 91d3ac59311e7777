use crate::rls::{tenant_table, USER_ROLES};
use sea_orm_migration::prelude::*;

/// E-mail preferences (onboarding, product news; transactional mail is always sent) and
/// the onboarding sequence, scheduled from the database: `email_sequence_steps` records
/// each step once per user (queued, or skipped because the user already did it), so
/// restarts and several instances neither skip nor repeat one.
/// `priv.email_sequences_run(at)` queues what is due at `at` (the clock is a
/// parameter: the tests move it).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000202_create_email_sequences"
    }
}

const SQL: &str = r#"
ALTER TABLE users
  ADD COLUMN email_onboarding   boolean NOT NULL DEFAULT true,
  ADD COLUMN email_product_news boolean NOT NULL DEFAULT true;

CREATE TABLE email_sequence_steps (
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  step       text NOT NULL,
  outcome    text NOT NULL CHECK (outcome IN ('queued', 'skipped')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, step)
);

"#;

/// The scheduler (a later migration replaces it, adding a condition).
pub(crate) const SEQUENCES_FUNCTION: &str = r#"
-- Onboarding: day 0 welcome, day 1 connect a marketplace account, day 3 run a first
-- scan, day 7 tips. A step is due from its day for two days (a restart or an outage
-- shorter than that skips nothing; a user who joined before the sequence existed is not
-- sent a backlog). It is skipped when the data says the user did it, and nothing is sent
-- once the user unsubscribed from onboarding or pays.
CREATE FUNCTION priv.email_sequences_run(at timestamptz)
  RETURNS int
  LANGUAGE sql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
  AS $$
    WITH due AS (
      SELECT u.id AS user_id, s.step,
             CASE s.step
               WHEN 'onboarding_connect' THEN EXISTS (SELECT 1 FROM public.marketplace_accounts m WHERE m.user_id = u.id)
               WHEN 'onboarding_scan' THEN EXISTS (SELECT 1 FROM public.jobs j WHERE j.user_id = u.id AND j.kind = 'scan')
               ELSE false
             END AS done
        FROM public.users u
        CROSS JOIN (VALUES ('onboarding_welcome', 0), ('onboarding_connect', 1), ('onboarding_scan', 3),
                           ('onboarding_tips', 7)) AS s (step, days)
       WHERE u.role = 'user' AND u.plan = 'free' AND u.email_onboarding
         AND u.created_at + make_interval(days => s.days) <= at
         AND u.created_at + make_interval(days => s.days + 2) > at
         AND NOT EXISTS (SELECT 1 FROM public.email_sequence_steps e WHERE e.user_id = u.id AND e.step = s.step)
       ORDER BY u.created_at
       LIMIT 1000
    ), recorded AS (
      INSERT INTO public.email_sequence_steps (user_id, step, outcome)
      SELECT d.user_id, d.step, CASE WHEN d.done THEN 'skipped' ELSE 'queued' END FROM due d
      ON CONFLICT DO NOTHING
      RETURNING user_id, step, outcome
    ), queued AS (
      INSERT INTO public.email_outbox (id, user_id, to_email, template, subject, body_text, data, locale)
      SELECT gen_random_uuid(), r.user_id, u.email, r.step, 'Plinth', 'Onboarding: ' || r.step, '{}'::jsonb, u.locale
        FROM recorded r JOIN public.users u ON u.id = r.user_id
       WHERE r.outcome = 'queued'
      RETURNING 1
    )
    SELECT count(*)::int FROM queued
  $$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SQL).await?;
        db.execute_unprepared(SEQUENCES_FUNCTION).await?;
        db.execute_unprepared(
            "REVOKE ALL ON FUNCTION priv.email_sequences_run(timestamptz) FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION priv.email_sequences_run(timestamptz) TO plinth_system;",
        )
        .await?;
        db.execute_unprepared(&tenant_table("email_sequence_steps", "user_id")).await?;
        db.execute_unprepared(&format!(
            "GRANT SELECT ON email_sequence_steps TO {USER_ROLES};
             GRANT UPDATE (email_onboarding, email_product_news) ON users TO {USER_ROLES};"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS priv.email_sequences_run(timestamptz);
                 DROP TABLE IF EXISTS email_sequence_steps;
                 ALTER TABLE users DROP COLUMN email_onboarding, DROP COLUMN email_product_news;",
            )
            .await?;
        Ok(())
    }
}
