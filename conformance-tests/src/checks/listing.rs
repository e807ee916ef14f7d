use std::collections::HashSet;

use session_core::ErrorKind;

use super::{R, ensure, expect_kind, get, list_all, put, put_many};
use crate::Ctx;

pub(crate) async fn list_by_prefix(ctx: &Ctx) -> R {
    for k in ["foo", "foobar", "foo/x", "fo", "bar", "Foo"] {
        put(ctx, &ctx.key(k), "v").await?;
    }
    let expect = |ks: &[&str]| ks.iter().map(|k| ctx.key(k)).collect::<Vec<_>>();
    let got = list_all(ctx, &ctx.key("foo")).await?;
    ensure!(
        got == expect(&["foo", "foo/x", "foobar"]),
        "list(\"foo\") returned {got:?}"
    );
    let got = list_all(ctx, &ctx.key("foobar")).await?;
    ensure!(
        got == expect(&["foobar"]),
        "list(\"foobar\") returned {got:?}"
    );
    let got = list_all(ctx, &ctx.key("zzz")).await?;
    ensure!(got.is_empty(), "list(\"zzz\") returned {got:?}");
    let got = list_all(ctx, &ctx.ns).await?;
    ensure!(
        got.len() == 6,
        "list of the namespace returned {} keys, expected 6",
        got.len()
    );
    Ok(())
}

pub(crate) async fn list_pages(ctx: &Ctx) -> R {
    let keys: Vec<String> = (0..1100)
        .map(|i| ctx.key(&format!("page/{i:04}")))
        .collect();
    put_many(ctx, &keys).await?;
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = ctx
            .driver
            .list(&ctx.key("page/"), cursor.as_deref())
            .await
            .map_err(super::fail("list"))?;
        seen.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    ensure!(
        unique.len() == seen.len(),
        "listing returned {} duplicates",
        seen.len() - unique.len()
    );
    let expected: HashSet<&String> = keys.iter().collect();
    ensure!(
        unique == expected,
        "listing returned {} of 1100 keys",
        unique.intersection(&expected).count()
    );
    Ok(())
}

pub(crate) async fn clear_by_prefix(ctx: &Ctx) -> R {
    ctx.driver
        .clear(&ctx.ns)
        .await
        .map_err(super::fail("clear of an empty namespace"))?;
    ctx.driver
        .clear(&ctx.ns)
        .await
        .map_err(super::fail("second clear of an empty namespace"))?;
    for k in ["a", "b/c", "d"] {
        put(ctx, &ctx.key(k), "v").await?;
    }
    ctx.driver
        .clear(&ctx.ns)
        .await
        .map_err(super::fail("clear"))?;
    ensure!(
        list_all(ctx, &ctx.ns).await?.is_empty(),
        "clear left keys behind"
    );
    ensure!(
        get(ctx, &ctx.key("b/c")).await?.is_none(),
        "a cleared key is still readable"
    );
    Ok(())
}

pub(crate) async fn list_unsupported_is_rejected(ctx: &Ctx) -> R {
    expect_kind(
        ctx.driver.list(&ctx.ns, None).await,
        ErrorKind::Unsupported,
        "list",
    )
}
