//! `session-admin`: the sessions of any session-kit storage, from the command line.
//!
//! ```text
//! session-admin --driver <CONFIG> [--namespace session:] <COMMAND>
//!
//!   list [--user USER] [--limit N] [--cursor CURSOR] [--json]   live sessions, a page at a time
//!   show <ID_HASH> [--json]                                     one session, secrets redacted
//!   revoke <ID_HASH> | revoke --user USER                       end sessions now
//!   sweep                                                       delete expired sessions
//!   stats                                                       count, bytes, by expiry
//!   migrate --to <CONFIG>                                       copy live sessions elsewhere
//! ```
//!
//! `CONFIG` is any config string the app uses (`fs:///var/lib/app/sessions`,
//! `redis://10.0.0.5:6379`, `postgres://...`), or `SESSION_DRIVER` from the environment.
//! Sessions are addressed by their handle, the hex SHA-256 of their id (what the storage key
//! ends with and what `Session::id_hash` returns), never by the id: nothing this tool prints
//! can be used as a cookie, and session values under secret-looking keys (`password`,
//! `token`, `card`, ...) are shown as `[redacted]`. No keyring is needed.
//!
//! `migrate` copies every live session with the time it has left, under the same key, create
//! only: run it again after an interruption and it skips what was copied. It then counts the
//! target's sessions and exits with status 1 if any is missing. It is for a store no app
//! writes to: changes made to a session after its copy stay behind. An app that moves to
//! another store while it runs uses `SessionStorageBuilder::migrate_from` instead, which
//! moves each session on its next request. `sweep` deletes sessions
//! whose deadlines have passed (stores without their own expiry: fs, SQLite, S3, object
//! stores; Redis and KV expire keys themselves). Progress goes to standard error when it is a
//! terminal.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use session_kit::{
    Driver, DriverConfig,
    admin::{Admin, StoredSession, redact},
};

/// The command line.
#[derive(Parser)]
#[command(
    name = "session-admin",
    version,
    about = "Operate on the sessions of a session-kit storage"
)]
struct Cli {
    /// The storage: any session-kit config string.
    #[arg(long, env = "SESSION_DRIVER", hide_env_values = true)]
    driver: String,
    /// The storage namespace (the app's SessionStorageBuilder::namespace).
    #[arg(long, default_value = "session:")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Live sessions, a page at a time (or all of a user's).
    List {
        /// Only this user's sessions (through the user index).
        #[arg(long)]
        user: Option<String>,
        /// Stop after this many sessions and print the cursor to go on from.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Go on from this cursor (printed by the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One session, with secret-looking values redacted.
    Show {
        /// The session's handle (64 hex digits).
        id_hash: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a session, or every session of a user.
    Revoke {
        /// The session's handle.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id_hash: Option<String>,
        /// Every session of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete the sessions whose deadlines have passed.
    Sweep,
    /// Count the sessions: total, bytes, users, by time left.
    Stats,
    /// Copy the live sessions to another storage, then verify by count.
    Migrate {
        /// The target storage's config string.
        #[arg(long)]
        to: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("session-admin: {message}");
            ExitCode::from(2)
        }
    }
}

async fn open(config: &str) -> Result<Arc<dyn Driver>, String> {
    let shown = DriverConfig::parse(config)
        .map(|c| c.redacted())
        .unwrap_or_else(|_| "the config string".into());
    session_kit::open(config)
        .await
        .map_err(|e| format!("cannot open {shown}: {e}"))
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let admin = Admin::new(open(&cli.driver).await?, cli.namespace.clone());
    let fail = |e: session_kit::SessionError| e.report().to_string();
    match cli.command {
        Command::List {
            user: Some(user),
            json,
            ..
        } => {
            for session in admin.user_sessions(&user).await.map_err(fail)? {
                print_session(&session, json);
            }
        }
        Command::List {
            user: None,
            limit,
            cursor,
            json,
        } => {
            // A cursor is `<sessions to skip on the page>:<the driver's cursor of the page>`, so
            // pages hold exactly `limit` sessions whatever the driver's page size.
            let (mut skip, mut cursor) = match cursor.as_deref().map(|c| c.split_once(':')) {
                None => (0, None),
                Some(Some((skip, page))) => (
                    skip.parse::<usize>()
                        .map_err(|_| format!("bad --cursor {skip}:..."))?,
                    (!page.is_empty()).then(|| page.to_owned()),
                ),
                Some(None) => {
                    return Err("bad --cursor: use the one the previous page printed".into());
                }
            };
            let mut shown = 0;
            loop {
                let page = admin.page(cursor.as_deref()).await.map_err(fail)?;
                if page.unreadable > 0 {
                    eprintln!(
                        "{} keys under the namespace are not session records",
                        page.unreadable
                    );
                }
                for (index, session) in page.sessions.iter().enumerate().skip(skip) {
                    if shown == limit {
                        eprintln!("more: --cursor {index}:{}", cursor.as_deref().unwrap_or(""));
                        return Ok(ExitCode::SUCCESS);
                    }
                    print_session(session, json);
                    shown += 1;
                }
                skip = 0;
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Command::Show { id_hash, json } => match admin.show(&id_hash).await.map_err(fail)? {
            Some(session) if json => println!("{}", session_json(&session, true)),
            Some(session) => {
                print_session(&session, false);
                let data = redact(&serde_json::Value::Object(session.data.clone()));
                println!(
                    "data: {}",
                    serde_json::to_string_pretty(&data).unwrap_or_default()
                );
                if !session.flash.is_empty() {
                    println!("unread flash: {}", session.flash.join(", "));
                }
            }
            None => {
                eprintln!("no live session {id_hash}");
                return Ok(ExitCode::FAILURE);
            }
        },
        Command::Revoke {
            id_hash: Some(id_hash),
            ..
        } => {
            if !admin.revoke(&id_hash).await.map_err(fail)? {
                eprintln!("no live session {id_hash}");
                return Ok(ExitCode::FAILURE);
            }
            println!("revoked 1 session");
        }
        Command::Revoke {
            user: Some(user), ..
        } => {
            let revoked = admin.revoke_user(&user).await.map_err(fail)?;
            println!("revoked {revoked} sessions of {user}");
        }
        Command::Revoke { .. } => return Err("revoke: give a session handle or --user".into()),
        Command::Sweep => {
            let bar = progress("swept");
            let mut swept = admin.sweep_store().await.map_err(fail)?;
            bar.inc(swept);
            let mut cursor = None;
            loop {
                let (n, next) = admin.sweep_page(cursor.as_deref()).await.map_err(fail)?;
                swept += n;
                bar.inc(n);
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            bar.finish_and_clear();
            println!("swept {swept} expired sessions");
        }
        Command::Stats => {
            let stats = count(&admin).await.map_err(fail)?;
            println!("sessions: {}", stats.sessions);
            println!("bytes: {}", stats.bytes);
            println!(
                "bound to a user: {} ({} users)",
                stats.bound,
                stats.users.len()
            );
            for (label, n) in BUCKETS.iter().zip(stats.by_expiry) {
                println!("ending {label}: {n}");
            }
            if stats.unreadable > 0 {
                println!("not session records: {}", stats.unreadable);
            }
        }
        Command::Migrate { to } => {
            let target = open(&to).await?;
            let bar = progress("copied");
            let (mut total, mut cursor) = (session_kit::admin::Copied::default(), None);
            loop {
                let (done, next) = admin
                    .copy_page(&target, cursor.as_deref())
                    .await
                    .map_err(fail)?;
                total.copied += done.copied;
                total.existing += done.existing;
                total.expired += done.expired;
                bar.inc(done.copied + done.existing);
                match next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            bar.finish_and_clear();
            println!(
                "copied {} sessions ({} were there already, {} ended before their turn)",
                total.copied, total.existing, total.expired
            );
            let there = count(&Admin::new(target, cli.namespace.clone()))
                .await
                .map_err(fail)?
                .sessions;
            let expected = total.copied + total.existing;
            if there < expected {
                eprintln!(
                    "verification failed: the target has {there} live sessions, {expected} expected"
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("verified: the target has {there} live sessions");
        }
    }
    Ok(ExitCode::SUCCESS)
}

const BUCKETS: [&str; 5] = [
    "within an hour",
    "within a day",
    "within a week",
    "later",
    "never",
];

#[derive(Default)]
struct Stats {
    sessions: u64,
    bytes: u64,
    bound: u64,
    users: std::collections::HashSet<String>,
    by_expiry: [u64; 5],
    unreadable: u64,
}

async fn count(admin: &Admin) -> Result<Stats, session_kit::SessionError> {
    let mut stats = Stats::default();
    let mut cursor = None;
    let now = SystemTime::now();
    loop {
        let page = admin.page(cursor.as_deref()).await?;
        stats.unreadable += page.unreadable as u64;
        for s in page.sessions {
            stats.sessions += 1;
            stats.bytes += s.size as u64;
            if let Some(user) = s.user {
                stats.bound += 1;
                stats.users.insert(user);
            }
            let left = s
                .expires_at
                .map(|at| at.duration_since(now).unwrap_or_default());
            let bucket = match left {
                Some(d) if d <= Duration::from_secs(3600) => 0,
                Some(d) if d <= Duration::from_secs(86_400) => 1,
                Some(d) if d <= Duration::from_secs(7 * 86_400) => 2,
                Some(_) => 3,
                None => 4,
            };
            stats.by_expiry[bucket] += 1;
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(stats),
        }
    }
}

fn progress(what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} sessions {msg} ({per_sec})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "?".into(),
    }
}

fn session_json(s: &StoredSession, with_data: bool) -> serde_json::Value {
    let mut out = serde_json::json!({
        "id_hash": s.id_hash,
        "bytes": s.size,
        "created_at": utc(s.created_at),
        "expires_at": s.expires_at.map(utc),
        "user": s.user,
        "labels": s.labels,
    });
    if with_data && let Some(map) = out.as_object_mut() {
        map.insert(
            "data".into(),
            redact(&serde_json::Value::Object(s.data.clone())),
        );
        map.insert("flash".into(), serde_json::Value::from(s.flash.clone()));
    }
    out
}

fn print_session(s: &StoredSession, json: bool) {
    if json {
        println!("{}", session_json(s, false));
        return;
    }
    let labels = if s.labels.is_empty() {
        String::new()
    } else {
        format!(" {}", serde_json::Value::Object(s.labels.clone()))
    };
    println!(
        "{}  created {}  ends {}  {} bytes  user {}{labels}",
        s.id_hash,
        utc(s.created_at),
        s.expires_at.map(utc).unwrap_or_else(|| "never".into()),
        s.size,
        s.user.as_deref().unwrap_or("-"),
    );
}
