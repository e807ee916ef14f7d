use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use session_core::{ErrorKind, PutOptions};

use super::{R, bytes, ensure, expect_kind, get, list_all, put};
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

pub(crate) async fn large_values(ctx: &Ctx) -> R {
    let max = ctx.caps().max_value_size;
    let mib = 1024 * 1024;
    let size = max.min(mib);
    let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let key = ctx.key("large");
    put(ctx, &key, value.clone()).await?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&value[..]),
        "a {size}-byte value did not round-trip"
    );
    if max <= 32 * mib {
        let exact = vec![7u8; max];
        put(ctx, &key, exact.clone()).await?;
        ensure!(
            get(ctx, &key).await?.map(|v| v.len()) == Some(max),
            "a value of the maximum size did not round-trip"
        );
        expect_kind(
            ctx.driver
                .put(&key, bytes(vec![7u8; max + 1]), PutOptions::new())
                .await,
            ErrorKind::ValueTooLarge,
            &format!("put of {} bytes", max + 1),
        )?;
        ensure!(
            get(ctx, &key).await?.map(|v| v.len()) == Some(max),
            "a refused write changed the value"
        );
    }
    Ok(())
}

pub(crate) async fn reads_never_see_torn_writes(ctx: &Ctx) -> R {
    let size = ctx.caps().max_value_size.min(256 * 1024);
    let a = vec![b'a'; size];
    let b = vec![b'b'; size * 3 / 4];
    let key = ctx.key("torn");
    put(ctx, &key, a.clone()).await?;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (driver, key, done, a, b) = (
                Arc::clone(&ctx.driver),
                key.clone(),
                Arc::clone(&done),
                a.clone(),
                b.clone(),
            );
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    match driver.get(&key).await {
                        Ok(Some(e)) if e.value == a || e.value == b => reads += 1,
                        Ok(Some(e)) => {
                            return Err(format!(
                                "a read saw a torn value of {} bytes",
                                e.value.len()
                            ));
                        }
                        Ok(None) => {
                            return Err("a read racing overwrites found no value".to_owned());
                        }
                        Err(e) => return Err(format!("get: {e}")),
                    }
                }
                Ok(reads)
            })
        })
        .collect();
    for i in 0..30 {
        put(ctx, &key, if i % 2 == 0 { b.clone() } else { a.clone() }).await?;
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.map_err(|e| format!("reader task: {e}"))??;
    }
    if ctx.caps().list {
        let keys = list_all(ctx, &ctx.ns).await?;
        ensure!(
            keys == [key.clone()],
            "list shows {keys:?}; temporary entries must never be listed"
        );
    }
    Ok(())
}
