use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use session_kit_core::{ErrorKind, PutOptions};

use super::{R, bytes, ensure, expect_kind, get, list_all, put, random_bytes};
use crate::Ctx;

pub(crate) async fn empty_value_round_trips(ctx: &Ctx) -> R {
    let key = ctx.key("empty");
    put(ctx, &key, Vec::new()).await?;
    let got = get(ctx, &key).await?;
    ensure!(
        got.as_deref() == Some(&b""[..]),
        "an empty value read back as {got:?}"
    );
    Ok(())
}

pub(crate) async fn binary_values_round_trip(ctx: &Ctx) -> R {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let values: [&[u8]; 5] = [
        b"\0",
        b"\xff\xfe\xfd",
        b"\xc3\x28 invalid utf-8",
        b"\0\0\0trailing\0",
        &every_byte,
    ];
    for (i, value) in values.iter().enumerate() {
        let key = ctx.key(&format!("bin{i}"));
        put(ctx, &key, value.to_vec()).await?;
        let got = get(ctx, &key).await?;
        ensure!(
            got.as_deref() == Some(*value),
            "binary value {i} did not round-trip"
        );
    }
    Ok(())
}

pub(crate) async fn values_are_stored_verbatim(ctx: &Ctx) -> R {
    let values: &[&[u8]] = &[
        b"v ",
        b"v\n",
        b"v\r\n",
        b" v",
        b"\n",
        b" ",
        b"\t\n \r\n",
        b"v\0",
        "\u{feff}with a byte order mark".as_bytes(),
        "e\u{301}".as_bytes(),
        br#"{"b":1,"a":2}"#,
        br#"{ "a" : 1 }"#,
        br#"{"a":1,"a":2}"#,
        b"1.0",
        b"1e3",
        br#""\u00e9""#,
        b"[1, 2]",
        b"null",
        b"true",
    ];
    for (i, value) in values.iter().enumerate() {
        put(ctx, &ctx.key(&format!("verbatim{i}")), value.to_vec()).await?;
    }
    for (i, value) in values.iter().enumerate() {
        let got = get(ctx, &ctx.key(&format!("verbatim{i}"))).await?;
        ensure!(
            got.as_deref() == Some(*value),
            "the value {:?} read back as {:?}: values must be stored byte for byte",
            String::from_utf8_lossy(value),
            got.as_deref().map(String::from_utf8_lossy)
        );
    }
    Ok(())
}

pub(crate) async fn large_values(ctx: &Ctx) -> R {
    let max = ctx.caps().max_value_size;
    let mib = 1024 * 1024;
    let size = max.min(mib);
    // Random bytes: a value corrupted in a way that keeps its length (chunks reordered or
    // repeated) still differs.
    let value = random_bytes(size);
    let key = ctx.key("large");
    put(ctx, &key, value.clone()).await?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&value[..]),
        "a random {size}-byte value did not round-trip byte for byte"
    );
    if max <= 32 * mib {
        let exact = random_bytes(max);
        put(ctx, &key, exact.clone()).await?;
        ensure!(
            get(ctx, &key).await?.as_deref() == Some(&exact[..]),
            "a random value of the maximum size ({max} bytes) did not round-trip byte for byte"
        );
        expect_kind(
            ctx.driver
                .put(&key, bytes(vec![7u8; max + 1]), PutOptions::new())
                .await,
            ErrorKind::ValueTooLarge,
            &format!("put of {} bytes", max + 1),
        )?;
        ensure!(
            get(ctx, &key).await?.as_deref() == Some(&exact[..]),
            "a refused write changed the value"
        );
    }
    Ok(())
}

pub(crate) async fn reads_never_see_torn_writes(ctx: &Ctx) -> R {
    const READERS: usize = 4;
    const WRITES: usize = 100;
    let size = ctx.caps().max_value_size.min(256 * 1024);
    let (a, b) = (random_bytes(size), random_bytes(size * 3 / 4));
    let key = ctx.key("torn");
    put(ctx, &key, a.clone()).await?;
    let done = Arc::new(AtomicBool::new(false));
    // Readers and the writer are tasks of the same runtime, released together, and every loop
    // yields: whenever a write waits (for I/O, or between two halves of a non-atomic write), a
    // reader runs, even on one thread; and a driver whose reads never yield cannot starve
    // the writer.
    let start = Arc::new(tokio::sync::Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (driver, key, done, start, a, b) = (
                Arc::clone(&ctx.driver),
                key.clone(),
                Arc::clone(&done),
                Arc::clone(&start),
                a.clone(),
                b.clone(),
            );
            tokio::spawn(async move {
                start.wait().await;
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    match driver.get(&key).await {
                        Ok(Some(e)) if e.value == a || e.value == b => reads += 1,
                        Ok(Some(e)) => {
                            return Err(format!(
                                "a read saw a torn value of {} bytes (writes are {} and {} bytes)",
                                e.value.len(),
                                a.len(),
                                b.len()
                            ));
                        }
                        Ok(None) => {
                            return Err("a read racing overwrites found no value".to_owned());
                        }
                        Err(e) => return Err(format!("get: {e}")),
                    }
                    tokio::task::yield_now().await;
                }
                Ok(reads)
            })
        })
        .collect();
    let writer = {
        let (driver, key, done) = (Arc::clone(&ctx.driver), key.clone(), Arc::clone(&done));
        let (a, b) = (bytes(a), bytes(b));
        tokio::spawn(async move {
            start.wait().await;
            let mut result = Ok(());
            for i in 0..WRITES {
                let value = if i % 2 == 0 { b.clone() } else { a.clone() };
                if let Err(e) = driver.put(&key, value, PutOptions::new()).await {
                    result = Err(format!("put: {e}"));
                    break;
                }
                tokio::task::yield_now().await;
            }
            done.store(true, Ordering::Relaxed);
            result
        })
    };
    let written = writer.await.map_err(|e| format!("writer task: {e}"));
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.map_err(|e| format!("reader task: {e}"))??;
    }
    written??;
    if ctx.caps().list {
        let keys = list_all(ctx, &ctx.ns).await?;
        ensure!(
            keys == [key.clone()],
            "list shows {keys:?}; temporary entries must never be listed"
        );
    }
    Ok(())
}
