//! The original Throome README's example (`NewClient(url, cluster)`, `Cache().Set/Get`,
//! `DB().Execute/Query`, `Queue().Publish`) with the Rust SDK, `throome-sdk`. Run against a
//! gateway whose cluster has a cache, a database, a queue with topic `events`, and a token:
//!
//! ```sh
//! THROOME_URL=http://localhost:9000 THROOME_CLUSTER=my-app THROOME_TOKEN=... \
//!   cargo run --example sdk_quickstart
//! ```

use std::time::Duration;

use throome_sdk::Client;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), throome_sdk::Error> {
    let client = Client::new(
        &env("THROOME_URL", "http://localhost:9000"),
        &env("THROOME_CLUSTER", "my-app"),
    )
    .token(&env("THROOME_TOKEN", ""));

    // Cache
    let hour = Some(Duration::from_secs(3600));
    client.cache().set("user:1", "John Doe", hour).await?;
    let name = client.cache().get_string("user:1").await?;
    println!("cache: user:1 = {}", name.unwrap_or_default());

    // Database
    let db = client.db();
    db.execute(
        "CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, name text)",
        &[],
    )
    .await?;
    db.execute("INSERT INTO users (name) VALUES ($1)", &["John Doe".into()])
        .await?;
    let rows = db
        .query(
            "SELECT count(*)::int AS n FROM users WHERE name = $1",
            &["John Doe".into()],
        )
        .await?;
    println!("db: users named John Doe = {}", rows.rows[0][0]);

    // Queue
    let sent = client.queue().publish("events", b"user.created").await?;
    println!(
        "queue: events partition {} offset {}",
        sent.partition_id, sent.offset
    );

    // The same cluster with the usual drivers
    for (service, e) in client.endpoints().await? {
        println!("native: {service} ({}) {}", e.kind, e.connect.join(" "));
    }
    Ok(())
}
