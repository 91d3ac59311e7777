//! Isolation, proven at the database: the runtime role cannot bypass row-level
//! security, every tenant table forces it, and a bare `SELECT *` sees only the
//! caller's rows — none when no user is set. Tables are discovered from the catalog,
//! so a table added later is covered without editing this file.

use crate::helpers::TestApp;
use api::{
    db::{RequestMeta, RequestTx},
    model::DbRole,
    principal::Principal,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sqlx::{Connection, Executor, PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

/// Tables that hold tenant rows: every table with a `user_id` column, plus `users`.
async fn tenant_tables(app: &TestApp) -> Vec<(String, String)> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS t, CASE WHEN c.relname = 'users' THEN 'id' ELSE 'user_id' END AS col
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND (c.relname = 'users' OR EXISTS (
             SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped))
         ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.iter().map(|r| (r.get("t"), r.get("col"))).collect()
}

/// A connection as the runtime login role, exactly as the server's pool connects.
async fn runtime_conn(app: &TestApp) -> PgConnection {
    let url = crate::helpers::admin_url(&app.database).replace("postgres@", "plinth_app@");
    PgConnection::connect(&url).await.unwrap()
}

/// Begins a transaction on `conn` as the server does for a principal: `SET LOCAL ROLE`
/// to `role` and, when given, `plinth.user_id` (an empty one reads as no user).
async fn begin_as<'c>(conn: &'c mut PgConnection, role: &str, user_id: Option<&str>) -> Transaction<'c, Postgres> {
    let mut tx = conn.begin().await.unwrap();
    match user_id {
        Some(user) => sqlx::query("SELECT set_config('role', $1, true), set_config('plinth.user_id', $2, true)")
            .bind(role)
            .bind(user),
        None => sqlx::query("SELECT set_config('role', $1, true)").bind(role),
    }
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

/// Begins a transaction as signed-in `user`.
async fn begin_as_user(conn: &mut PgConnection, user: Uuid) -> Transaction<'_, Postgres> {
    begin_as(conn, "plinth_user", Some(&user.to_string())).await
}

#[tokio::test]
async fn the_runtime_role_cannot_bypass_rls_and_owns_nothing() {
    let app = TestApp::spawn().await;
    let row = sqlx::query("SELECT rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'plinth_app'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for flag in ["rolsuper", "rolbypassrls", "rolinherit", "rolcreaterole", "rolcreatedb"] {
        assert!(!row.get::<bool, _>(flag), "plinth_app has {flag}");
    }
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname LIKE 'plinth\\_%'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(owned, 0, "an app role owns a relation");
    let app_roles_bypass: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'plinth\\_%' AND (rolsuper OR rolbypassrls)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(app_roles_bypass, 0);
    // Without switching role, the login role reads nothing at all.
    let mut conn = runtime_conn(&app).await;
    for (table, _) in tenant_tables(&app).await {
        let err = conn.execute(format!("SELECT * FROM {table}").as_str()).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{table}: {err}");
    }
}

#[tokio::test]
async fn every_tenant_table_forces_row_level_security() {
    let app = TestApp::spawn().await;
    let tables = tenant_tables(&app).await;
    assert!(tables.len() >= 6, "{tables:?}");
    for (table, _) in &tables {
        let (enabled, forced): (bool, bool) =
            sqlx::query_as("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace")
                .bind(table)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert!(enabled && forced, "{table}: enable={enabled} force={forced}");
    }
    // Views run as their owner unless security_invoker: there must be none without it.
    let bad_views: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace
           AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(bad_views.is_empty(), "{bad_views:?}");
}

#[tokio::test]
async fn a_user_sees_only_its_rows_and_nobody_sees_none() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut conn = runtime_conn(&app).await;
    for (table, col) in tenant_tables(&app).await {
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.db).await.unwrap();
        let mut seen_total = 0;
        for user in [ann.id, bob.id] {
            let mut tx = begin_as_user(&mut conn, user).await;
            // A table the user role may not read at all (token_revocations) shows nothing.
            let owners: Vec<Uuid> =
                match sqlx::query_scalar(&format!("SELECT {col} FROM {table}")).fetch_all(&mut *tx).await {
                    Ok(rows) => rows,
                    Err(e) if e.to_string().contains("permission denied") => {
                        tx.rollback().await.unwrap();
                        continue;
                    }
                    Err(e) => panic!("{table}: {e}"),
                };
            assert!(owners.iter().all(|o| *o == user), "{table}: user {user} saw another's rows");
            seen_total += owners.len() as i64;
            // Writes across tenants touch nothing.
            let other = if user == ann.id { bob.id } else { ann.id };
            let updated = sqlx::query(&format!("UPDATE {table} SET {col} = {col} WHERE {col} = $1"))
                .bind(other)
                .execute(&mut *tx)
                .await;
            if let Ok(done) = updated {
                assert_eq!(done.rows_affected(), 0, "{table}: updated another's rows");
            }
            tx.rollback().await.unwrap();
            let mut tx = begin_as_user(&mut conn, user).await;
            let deleted =
                sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1")).bind(other).execute(&mut *tx).await;
            if let Ok(done) = deleted {
                assert_eq!(done.rows_affected(), 0, "{table}: deleted another's rows");
            }
            tx.rollback().await.unwrap();
        }
        let readable = sqlx::query_scalar::<_, bool>("SELECT has_table_privilege('plinth_user', $1, 'SELECT')")
            .bind(&table)
            .fetch_one(&app.db)
            .await
            .unwrap();
        if readable {
            assert_eq!(seen_total, total, "{table}: the two users' views do not add up to the table");
        }
        // No user: the setting empty (as after an earlier transaction) or never set.
        for role in ["plinth_user", "plinth_support", "plinth_admin", "plinth_worker", "plinth_system"] {
            for set_user in [true, false] {
                let mut tx = begin_as(&mut conn, role, set_user.then_some("")).await;
                // Refused outright (no grant) or no rows: either way nothing is seen.
                let rows: Vec<Uuid> = sqlx::query_scalar(&format!("SELECT {col} FROM {table}"))
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap_or_default();
                // Staff policies need a signed-in staff id too: no role reads any row.
                assert!(rows.is_empty(), "{table} as {role} with no user: {} rows", rows.len());
                tx.rollback().await.unwrap();
            }
        }
        // The anonymous role reads no tenant table at all.
        let mut tx = begin_as(&mut conn, "plinth_anon", None).await;
        let err = tx.execute(format!("SELECT * FROM {table}").as_str()).await;
        assert!(err.is_err(), "{table} readable by plinth_anon");
        tx.rollback().await.ok();
    }
}

#[tokio::test]
async fn a_user_cannot_promote_itself() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let mut conn = runtime_conn(&app).await;
    let mut tx = begin_as_user(&mut conn, ann.id).await;
    let err = tx.execute("UPDATE users SET role = 'admin'").await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.unwrap();
    // The activity log is append-only.
    let mut tx = begin_as_user(&mut conn, ann.id).await;
    assert!(tx.execute("DELETE FROM activity_log").await.is_err());
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn cross_tenant_functions_are_narrow_and_private() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    app.register("bob").await;
    // Only the roles named below may execute them; PUBLIC may not.
    let grantees: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT coalesce(r.rolname, 'PUBLIC')::text FROM pg_proc p
         CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE p.pronamespace = 'priv'::regnamespace AND a.privilege_type = 'EXECUTE' AND r.rolname IS DISTINCT FROM (SELECT rolname FROM pg_roles WHERE oid = p.proowner)",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut grantees = grantees;
    grantees.sort();
    assert_eq!(
        grantees,
        ["plinth_admin", "plinth_anon", "plinth_metrics", "plinth_system", "plinth_user", "plinth_worker"]
    );
    // And each function has exactly its intended caller.
    let per_function: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname::text, string_agg(r.rolname::text, ',' ORDER BY r.rolname) FROM pg_proc p
         CROSS JOIN LATERAL aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
         WHERE p.pronamespace = 'priv'::regnamespace AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
         GROUP BY p.proname ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected = [
        ("accounts_due_for_deletion", "plinth_system"),
        ("admin_credit_quota", "plinth_admin"),
        ("admin_revoke_sessions", "plinth_admin"),
        ("admin_set_role", "plinth_admin"),
        ("admin_set_suspension", "plinth_admin"),
        ("begin_erasure", "plinth_system"),
        ("billing_admins", "plinth_system"),
        ("billing_customers", "plinth_system"),
        ("billing_due", "plinth_system"),
        ("chatwoot_inbound_message", "plinth_system"),
        ("chatwoot_notify_reply", "plinth_system"),
        ("chatwoot_outbox_claim", "plinth_system"),
        ("chatwoot_outbox_record", "plinth_system"),
        ("chatwoot_record_mapping", "plinth_system"),
        ("claim_job", "plinth_worker"),
        ("confirm_email_change", "plinth_user"),
        ("data_exports_claim", "plinth_system"),
        ("data_exports_expired", "plinth_system"),
        ("email_backlog", "plinth_system"),
        ("email_backlog_by_template", "plinth_system"),
        ("email_claim", "plinth_system"),
        ("email_provider_events", "plinth_system"),
        ("email_record", "plinth_system"),
        ("email_reminders_run", "plinth_system"),
        ("email_sequences_run", "plinth_system"),
        ("erase_account", "plinth_system"),
        ("expired_import_uploads", "plinth_system"),
        ("expired_ticket_attachments", "plinth_system"),
        ("expired_uploads", "plinth_system"),
        ("forget_ticket_attachment", "plinth_system"),
        ("imports_fail_stale", "plinth_system"),
        ("job_queue_stats", "plinth_system"),
        ("login_lookup", "plinth_anon"),
        ("metrics_caller_is_admin", "plinth_metrics"),
        ("requeue_expired_jobs", "plinth_system"),
        ("support_reply_mails_due", "plinth_system"),
        ("trial_extensions_claim", "plinth_system"),
        ("trial_extensions_record", "plinth_system"),
        ("user_for_stripe_customer", "plinth_system"),
        ("user_id_for_email", "plinth_anon"),
    ];
    let per_function: Vec<(&str, &str)> = per_function.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(per_function, expected);
    let mut conn = runtime_conn(&app).await;
    let mut tx = begin_as(&mut conn, "plinth_anon", None).await;
    let rows = sqlx::query("SELECT id FROM priv.login_lookup($1::citext)")
        .bind(ann.email.to_uppercase())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<Uuid, _>("id"), ann.id);
    let none = sqlx::query("SELECT id FROM priv.login_lookup('%')").fetch_all(&mut *tx).await.unwrap();
    assert!(none.is_empty());
    tx.rollback().await.unwrap();
    // A signed-in user's role cannot call them.
    let mut tx = begin_as(&mut conn, "plinth_user", None).await;
    assert!(tx.execute("SELECT * FROM priv.login_lookup('a@example.com')").await.is_err());
    tx.rollback().await.ok();
}

#[tokio::test]
async fn the_revocation_loader_reads_ended_sessions_ids_only_and_worker_tokens_are_the_servers_alone() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let out = app
        .gql(None, "mutation($t: String!) { logout(refreshToken: $t) }", serde_json::json!({ "t": ann.refresh }))
        .await;
    assert_eq!(out["data"]["logout"], true);
    let mut conn = runtime_conn(&app).await;

    // plinth_system: the ids (and end) of ended sessions, nothing of live ones, no owner.
    let mut tx = begin_as(&mut conn, "plinth_system", None).await;
    let ended: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM sessions").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(ended.len(), 1, "only Ann's ended session: {ended:?}");
    let (owner,): (Uuid,) =
        sqlx::query_as("SELECT user_id FROM sessions WHERE id = $1").bind(ended[0].0).fetch_one(&app.db).await.unwrap();
    assert_eq!(owner, ann.id);
    assert!(tx.execute("SELECT user_id FROM sessions").await.is_err(), "the owner column is not granted");
    tx.rollback().await.unwrap();
    let mut tx = begin_as(&mut conn, "plinth_system", None).await;
    assert!(tx.execute("UPDATE sessions SET revoked_at = NULL").await.is_err(), "read only");
    tx.rollback().await.unwrap();

    // worker_tokens: no user role reaches it.
    sqlx::query(
        "INSERT INTO worker_tokens (id, kinds, revocation_id, key_id, expires_at)
         VALUES ($1, '{scan}', 'ab', 0, now() + interval '1 day')",
    )
    .bind(Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();
    for role in ["plinth_user", "plinth_support", "plinth_admin", "plinth_anon", "plinth_worker"] {
        let mut tx = begin_as(&mut conn, role, Some(&bob.id.to_string())).await;
        let read = tx.fetch_all("SELECT * FROM worker_tokens").await;
        assert!(read.is_err() || read.unwrap().is_empty(), "{role} reads worker tokens");
        tx.rollback().await.unwrap();
    }
    let mut tx = begin_as(&mut conn, "plinth_system", None).await;
    assert_eq!(tx.fetch_all("SELECT * FROM worker_tokens").await.unwrap().len(), 1);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn confirming_a_change_of_address_works_only_for_the_links_own_account() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let hash = vec![7u8; 32];
    sqlx::query(
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, expires_at, new_email)
         VALUES ($1, $2, 'change_email', $3, now() + interval '1 hour', 'ann.new@example.org')",
    )
    .bind(Uuid::now_v7())
    .bind(ann.id)
    .bind(&hash)
    .execute(&app.db)
    .await
    .unwrap();
    let confirm = "SELECT new_email FROM priv.confirm_email_change($1, $2)";
    let mut conn = runtime_conn(&app).await;
    // Bob, naming Ann's account and her link's hash: nothing.
    let mut tx = begin_as_user(&mut conn, bob.id).await;
    let rows = sqlx::query(confirm).bind(ann.id).bind(&hash).fetch_all(&mut *tx).await.unwrap();
    assert!(rows.is_empty());
    tx.commit().await.unwrap();
    // Ann with another hash: nothing. The server's own roles cannot call it.
    let mut tx = begin_as_user(&mut conn, ann.id).await;
    let rows = sqlx::query(confirm).bind(ann.id).bind(vec![8u8; 32]).fetch_all(&mut *tx).await.unwrap();
    assert!(rows.is_empty());
    tx.commit().await.unwrap();
    for role in ["plinth_system", "plinth_anon", "plinth_worker"] {
        let mut tx = begin_as(&mut conn, role, Some(&ann.id.to_string())).await;
        assert!(sqlx::query(confirm).bind(ann.id).bind(&hash).fetch_all(&mut *tx).await.is_err(), "{role}");
        tx.rollback().await.ok();
    }
    let (email,): (String,) =
        sqlx::query_as("SELECT email::text FROM users WHERE id = $1").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert_eq!(email, ann.email);
    // Ann with her link: moved, once.
    let mut tx = begin_as_user(&mut conn, ann.id).await;
    let rows = sqlx::query(confirm).bind(ann.id).bind(&hash).fetch_all(&mut *tx).await.unwrap();
    assert_eq!(rows.len(), 1);
    let again = sqlx::query(confirm).bind(ann.id).bind(&hash).fetch_all(&mut *tx).await.unwrap();
    assert!(again.is_empty());
    tx.commit().await.unwrap();
    let (email,): (String,) =
        sqlx::query_as("SELECT email::text FROM users WHERE id = $1").bind(ann.id).fetch_one(&app.db).await.unwrap();
    assert_eq!(email, "ann.new@example.org");
    // And no runtime role may write an address directly.
    let mut tx = begin_as_user(&mut conn, bob.id).await;
    let direct =
        sqlx::query("UPDATE users SET email = 'x@example.org' WHERE id = $1").bind(bob.id).execute(&mut *tx).await;
    assert!(direct.is_err(), "users.email is not writable by plinth_user");
    tx.rollback().await.ok();
}

/// A runtime pool of one connection to `app`'s database: a transaction that reached it
/// again runs on the same server session, unless the first one's connection was closed.
async fn one_connection_pool(app: &TestApp) -> api::db::RuntimePool {
    let runtime = api::db::runtime_url(&crate::helpers::admin_url(&app.database), None).unwrap();
    api::db::connect_runtime(&runtime, 1, std::time::Duration::from_secs(5)).await.unwrap()
}

/// A request's transaction dropped unfinished (a request cancelled or out of time
/// mid-statement) never lends its open transaction, nor its role and user, to the next
/// request on the same pool: its connection is closed, not returned. With one pooled
/// connection the next transaction would otherwise run inside the first one.
#[tokio::test]
async fn a_transaction_dropped_unfinished_is_never_reused() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let pool = one_connection_pool(&app).await;
    let probe = "SELECT current_setting('role') AS role, current_setting('plinth.user_id', true) AS user_id, \
                 current_setting('plinth.marker', true) AS marker, now() AS began, \
                 pg_backend_pid() AS pid";
    let read = |tx: RequestTx| async move {
        let row = tx.query_one(Statement::from_string(DbBackend::Postgres, probe)).await.unwrap().unwrap();
        let get = |c: &str| row.try_get::<Option<String>>("", c).unwrap().unwrap_or_default();
        let began = row.try_get::<chrono::DateTime<chrono::Utc>>("", "began").unwrap();
        (get("role"), get("user_id"), get("marker"), began, row.try_get::<i32>("", "pid").unwrap())
    };
    for finish in ["dropped", "rolled back", "committed"] {
        let first = RequestTx::begin(&pool, Principal::System, RequestMeta::internal("test"), 5_000).await.unwrap();
        first.act_for_system(DbRole::User, ann.id).await.unwrap();
        first.execute_unprepared("SELECT set_config('plinth.marker', 'first', true)").await.unwrap();
        let (role, user, marker, began_first, pid_first) = read(first.clone()).await;
        assert_eq!(
            (role.as_str(), user.as_str(), marker.as_str()),
            ("plinth_user", ann.id.to_string().as_str(), "first")
        );
        match finish {
            "dropped" => drop(first),
            "rolled back" => first.rollback().await,
            _ => first.commit_without_events().await.unwrap(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let next = RequestTx::begin(&pool, Principal::System, RequestMeta::internal("test"), 5_000).await.unwrap();
        let (role, user, marker, began_next, pid_next) = read(next.clone()).await;
        assert_eq!(
            (role.as_str(), user.as_str(), marker.as_str()),
            ("plinth_system", "", ""),
            "after the first was {finish}"
        );
        assert!(began_next > began_first, "a fresh transaction after the first was {finish}");
        // Finished cleanly, the connection is lent again (the pool's one); dropped
        // unfinished, it was closed and the next one is a new server process.
        assert_eq!(pid_next == pid_first, finish != "dropped", "the same connection after the first was {finish}");
        next.rollback().await;
    }
}

/// A statement the database refused aborts the transaction, and PostgreSQL answers the
/// COMMIT that follows with ROLLBACK and no error. A caller that ignored the failure
/// must not see its request reported committed nor its events published.
#[tokio::test]
async fn a_commit_after_a_refused_statement_fails_and_publishes_nothing() {
    use api::events::{Event, EventBus, Topic};
    let app = TestApp::spawn().await;
    let ann = app.register("ann").await;
    let pool = one_connection_pool(&app).await;
    let bus = EventBus::in_process();
    let mut heard = bus.subscribe(Some(Topic::User(ann.id)));
    let count = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'probe'")
            .bind(ann.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        n
    };
    for refused in [true, false] {
        let tx = RequestTx::begin(&pool, Principal::System, RequestMeta::internal("test"), 5_000).await.unwrap();
        tx.act_for_system(DbRole::User, ann.id).await.unwrap();
        let id = uuid::Uuid::now_v7();
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO notifications (id, user_id, kind, title, body) VALUES ($1, $2, 'probe', 't', 'b')",
            [id.into(), ann.id.into()],
        ))
        .await
        .unwrap();
        tx.emit(Event::NotificationAdded { user_id: ann.id, notification_id: id });
        if refused {
            // Refused by the database, and the error ignored.
            assert!(tx.execute_unprepared("SELECT 1 / 0").await.is_err());
            assert!(tx.commit(&bus).await.is_err(), "a COMMIT after a refused statement fails");
            assert_eq!(count().await, 0, "nothing was written");
            let nothing = tokio::time::timeout(std::time::Duration::from_millis(200), heard.recv()).await;
            assert!(nothing.is_err(), "no event is published: {nothing:?}");
        } else {
            // The same work without the refusal commits and publishes, on the same
            // (single) connection, which the failed COMMIT gave back clean.
            tx.commit(&bus).await.unwrap();
            assert_eq!(count().await, 1);
            let event = tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv()).await.unwrap().unwrap();
            assert_eq!(event, Event::NotificationAdded { user_id: ann.id, notification_id: id });
        }
    }
}
