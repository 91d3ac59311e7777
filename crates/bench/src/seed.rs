//! What the scenarios read: users signed up through the API (the server hashes their
//! passwords and issues their tokens as for anyone), then their drafts and photos
//! written straight into the database with `COPY` (200,000 rows in seconds).
use crate::http::{request, Conn};
use anyhow::{bail, Context};
use futures::SinkExt;
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// Every seeded user's password.
pub const PASSWORD: &str = "bench password 1";

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }";

/// A signed-up user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// Signs `n` users up over `concurrency` connections (`bench-<i>@example.com`).
///
/// Errors: a refused or failed sign-up.
pub async fn users(addr: SocketAddr, n: usize, concurrency: usize) -> anyhow::Result<Vec<User>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(n).max(1) {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                let email = format!("bench-{i}@example.com");
                let a = conn
                    .graphql(None, request(REGISTER, json!({ "i": { "email": email, "password": PASSWORD } })))
                    .await?;
                let v = a.json()?;
                let r = &v["data"]["register"];
                let (Some(token), Some(id)) = (r["accessToken"].as_str(), r["user"]["id"].as_str()) else {
                    bail!("register {email}: {v}");
                };
                out.push((i, User { id: id.parse()?, email, token: token.to_owned() }));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, u)| u).collect())
}

/// Words the titles and descriptions are made of: second-hand clothes, the product's trade.
const ITEMS: [&str; 12] = [
    "denim jacket",
    "wool coat",
    "leather boots",
    "silk scarf",
    "linen shirt",
    "running shoes",
    "cashmere jumper",
    "trench coat",
    "midi skirt",
    "chino trousers",
    "puffer jacket",
    "canvas tote bag",
];
const BRANDS: [&str; 8] = ["Levi's", "Zara", "Sézane", "Patagonia", "Uniqlo", "COS", "Arket", "Veja"];

/// `per_user` drafts for each user, each with `photos` ready photos, through `COPY`;
/// then `ANALYZE`. Returns the drafts and photos written.
///
/// Errors: the database's.
pub async fn drafts(database_url: &str, users: &[User], per_user: usize, photos: usize) -> anyhow::Result<(u64, u64)> {
    let (client, conn) = tokio_postgres::connect(database_url, NoTls).await.context("connecting to seed")?;
    tokio::spawn(conn);
    let base = chrono::Utc::now() - chrono::Duration::days(1);
    let mut photo_buf = String::new();
    let (mut drafts, mut photo_count) = (0u64, 0u64);
    {
        let sink = client
            .copy_in(
                "COPY drafts (id, user_id, title, description, price_cents, brand, size, condition, status, \
                 created_at, updated_at) FROM STDIN",
            )
            .await?;
        futures::pin_mut!(sink);
        let mut buf = String::with_capacity(2 << 20);
        for (u, user) in users.iter().enumerate() {
            for d in 0..per_user {
                let id = Uuid::now_v7();
                let k = u * per_user + d;
                let item = ITEMS[k % ITEMS.len()];
                let brand = BRANDS[(k / 3) % BRANDS.len()];
                let size = ["S", "M", "L", "XL"][k % 4];
                // A distinct time per draft: the list order is well defined.
                let at = (base - chrono::Duration::seconds((per_user - d) as i64)).format("%Y-%m-%d %H:%M:%S%.6f+00");
                buf.push_str(&format!(
                    "{id}\t{user}\t{brand} {item}, size {size}\t{brand} {item} in very good condition, worn a \
                     handful of times. No stains, no holes; the colour is true to the photos taken in daylight. \
                     Measurements on request. Smoke-free home, shipped within two days. Ref. {k}.\t{price}\t\
                     {brand}\t{size}\tvery_good\tdraft\t{at}\t{at}\n",
                    user = user.id,
                    price = 1500 + (k % 50) * 100,
                ));
                for p in 0..photos {
                    photo_buf.push_str(&format!(
                        "{}\t{}\t{id}\t{p}\tbench/{id}/{p}.jpg\timage/jpeg\t{}\t1600\t1200\tready\t{at}\t{at}\n",
                        Uuid::now_v7(),
                        user.id,
                        180_000 + p * 1000,
                    ));
                    photo_count += 1;
                }
                drafts += 1;
                if buf.len() > 1 << 20 {
                    sink.send(bytes::Bytes::from(std::mem::take(&mut buf))).await?;
                }
            }
        }
        sink.send(bytes::Bytes::from(buf)).await?;
        sink.finish().await?;
    }
    if photo_count > 0 {
        let sink = client
            .copy_in(
                "COPY photos (id, user_id, draft_id, position, object_key, content_type, byte_size, width, height, \
                 status, created_at, updated_at) FROM STDIN",
            )
            .await?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(photo_buf)).await?;
        sink.finish().await?;
    }
    client.batch_execute("ANALYZE drafts; ANALYZE photos").await?;
    Ok((drafts, photo_count))
}
