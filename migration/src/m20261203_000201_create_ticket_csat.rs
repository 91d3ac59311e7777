use crate::rls::{tenant_table, CURRENT_USER_ID, USER_ROLES};
use sea_orm_migration::prelude::*;

/// CSAT after a resolved ticket (issue 15, item 4), and its figures for administrators.
///
/// - `ticket_csat`: a tenant table (forced RLS, the owner policy), one row per ticket:
///   the primary key makes the rating once-only, and no role may update or delete it.
///   A restrictive policy lets a rating in only for a ticket of its author that is
///   resolved or closed, whatever the server checked before.
/// - `metrics.support_csat`: the CSAT figures `supportMetrics` adds to those of
///   `metrics.support` (which stays as it was, so no applied definition is rewritten):
///   the ratings given in the range, their average, and how many are 4 or 5 — the
///   standard CSAT definition (the share of satisfied ratings, 4 or 5 on a 1–5 scale).
///   The metrics role reads the score and time of a rating, never its comment.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000201_create_ticket_csat"
    }
}

const SQL: &str = r#"
CREATE TABLE ticket_csat (
  user_id    uuid NOT NULL,
  ticket_id  uuid NOT NULL,
  score      smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
  comment    text CHECK (char_length(comment) BETWEEN 1 AND 1000),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, ticket_id),
  FOREIGN KEY (user_id, ticket_id) REFERENCES tickets (user_id, id) ON DELETE CASCADE
);
CREATE INDEX ticket_csat_created_idx ON ticket_csat (created_at);
{csat_rls}
-- Only for the author's own ticket, once it is resolved or closed.
CREATE POLICY ticket_csat_resolved_only ON ticket_csat AS RESTRICTIVE FOR INSERT TO {USER_ROLES}
  WITH CHECK (EXISTS (SELECT 1 FROM tickets t
                       WHERE t.user_id = ticket_csat.user_id AND t.id = ticket_csat.ticket_id
                         AND t.user_id = {me} AND t.status IN ('resolved', 'closed')));
GRANT SELECT, INSERT ON ticket_csat TO {USER_ROLES};
CREATE POLICY ticket_csat_metrics ON ticket_csat FOR SELECT TO plinth_metrics
  USING ((SELECT priv.metrics_caller_is_admin()));
GRANT SELECT (user_id, ticket_id, score, created_at) ON ticket_csat TO plinth_metrics;

-- CSAT of the ratings given in [from, to) (whenever their ticket was opened): how many,
-- their average score (1–5), how many are 4 or 5 (satisfied).
CREATE FUNCTION metrics.support_csat(from_at timestamptz, to_at timestamptz)
  RETURNS TABLE (responses bigint, average double precision, satisfied bigint)
  LANGUAGE sql STABLE
  AS $$
  SELECT count(*), avg(c.score)::double precision, count(*) FILTER (WHERE c.score >= 4)
  FROM public.ticket_csat c
  WHERE c.created_at >= from_at AND c.created_at < to_at $$;
REVOKE ALL ON FUNCTION metrics.support_csat(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics.support_csat(timestamptz, timestamptz) TO plinth_metrics;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = SQL
            .replace("{csat_rls}", &tenant_table("ticket_csat", "user_id"))
            .replace("{USER_ROLES}", USER_ROLES)
            .replace("{me}", CURRENT_USER_ID);
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP FUNCTION IF EXISTS metrics.support_csat(timestamptz, timestamptz);
                 DROP TABLE IF EXISTS ticket_csat;",
            )
            .await?;
        Ok(())
    }
}
