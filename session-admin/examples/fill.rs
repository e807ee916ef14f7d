//! Fills a storage with sessions, for measuring `session-admin` on a large store:
//! `cargo run --release -p session-kit-admin --example fill -- <CONFIG> <COUNT>`.
//! Each session holds about 100 bytes of data; every tenth is bound to one of 1,000 users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use session_kit::{DynamicData, Keyring};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().expect("usage: fill <CONFIG> <COUNT>");
    let count: usize = args
        .next()
        .expect("usage: fill <CONFIG> <COUNT>")
        .parse()
        .unwrap();
    let storage = session_kit::storage::<DynamicData>(&config)
        .await
        .unwrap()
        .keyring(Keyring::from_secrets(["a secret of at least thirty-two bytes"]).unwrap())
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (storage, next) = (storage.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let session = storage.get_session(None);
                    session
                        .insert("cart", vec!["book", "pen", "lamp"])
                        .await
                        .unwrap();
                    session.insert("visits", n).await.unwrap();
                    session
                        .insert("theme", "dark and readable at night")
                        .await
                        .unwrap();
                    if n % 10 == 0 {
                        session
                            .bind_user(format!("user-{}", n % 1000))
                            .await
                            .unwrap();
                    }
                    storage.commit_session(&session).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    eprintln!("{count} sessions in {:.1?}", started.elapsed());
}
