//! One config string picks any kind of storage, cookie-only included.
#![allow(clippy::unwrap_used)]

use session_kit::{DriverConfig, DynamicData, Keyring};

fn keyring() -> Keyring {
    Keyring::from_secrets(["a secret of at least 32 bytes, for tests"]).unwrap()
}

#[tokio::test]
async fn cookie_and_drivers_by_name() {
    let cookie = session_kit::storage::<DynamicData>("cookie")
        .await
        .unwrap()
        .keyring(keyring())
        .build()
        .unwrap();
    assert!(cookie.driver().is_none(), "cookie-only: no store");
    let memory = session_kit::storage::<DynamicData>("memory")
        .await
        .unwrap()
        .keyring(keyring())
        .build()
        .unwrap();
    assert_eq!(memory.driver().unwrap().name(), "memory");
    let unknown = session_kit::storage::<DynamicData>("cookies")
        .await
        .err()
        .unwrap();
    assert!(unknown.to_string().contains("memory"), "{unknown}");

    let from_table: DriverConfig = serde_json::from_str(r#"{ "driver": "cookie" }"#).unwrap();
    assert!(
        session_kit::storage_config::<DynamicData>(from_table)
            .await
            .is_ok()
    );
    let with_options: DriverConfig =
        serde_json::from_str(r#"{ "driver": "cookie", "base": "/tmp" }"#).unwrap();
    let err = session_kit::storage_config::<DynamicData>(with_options)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("cookie-only"), "{err}");
}
