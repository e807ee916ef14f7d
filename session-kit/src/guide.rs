//! The user's guide: from an empty project to production.
//!
//! | chapter | for |
//! |---|---|
//! | [Getting started](getting_started) | an axum app with sessions in Redis, configured by a file, step by step |
//! | [The model](model) | cookies, ids, records and drivers; one request through the sans-IO API; the session's calls; expiry; errors |
//! | [axum], [actix-web](actix) | the framework integrations, with runnable examples |
//! | [Sessions per user](users) | binding sessions to users, a devices page, "log out everywhere", not-before stamps for cookie-only sessions |
//! | [Operations](operations) | `session-admin`: list, inspect, revoke, sweep, count and migrate sessions from the command line |
//! | [Request forgery](csrf) | the origin check layer and the session-bound token, for axum and actix-web |
//! | [API clients](api_clients) | the session token in `Authorization: Bearer` or a header of your choosing, beside cookies |
//! | [Concurrent requests](concurrency) | what each handler style gets when requests of one session overlap, per kind of storage |
//! | [Choosing a driver](choosing_a_driver) | latency, durability, several servers, expiry and concurrency, per driver |
//! | [Configuration](configuration) | naming the storage (every config string and option), and the storage builder |
//! | [Deployment](behind_a_proxy) | behind a TLS-terminating proxy, several servers, local development over plain HTTP |
//! | [Observability](observability) | logs and traces through `tracing`, metrics through the `metrics` facade, a Prometheus endpoint |
//! | [Key rotation](key_rotation) | secrets from the environment, rotating without logging anyone out |
//! | [Cloudflare Workers](cloudflare_workers) | sessions in Workers KV from a Rust Worker |
//! | [Writing a driver](writing_a_driver) | the `Driver` trait, layers, and certifying with the conformance suite |
//!
//! The chapters are also Markdown files in the repository (`session-kit/guide/`); their examples
//! are compiled and run as doctests.

pub mod getting_started {
    #![doc = include_str!("../guide/getting_started.md")]
}

pub mod model {
    #![doc = include_str!("../guide/model.md")]
}

pub mod axum {
    #![doc = include_str!("../guide/axum.md")]
}

pub mod actix {
    #![doc = include_str!("../guide/actix.md")]
}

pub mod users {
    #![doc = include_str!("../guide/users.md")]
}

pub mod operations {
    #![doc = include_str!("../guide/operations.md")]
}

pub mod csrf {
    #![doc = include_str!("../guide/csrf.md")]
}

pub mod api_clients {
    #![doc = include_str!("../guide/api_clients.md")]
}

pub mod concurrency {
    #![doc = include_str!("../guide/concurrency.md")]
}

pub mod choosing_a_driver {
    #![doc = include_str!("../guide/choosing_a_driver.md")]
}

pub mod configuration {
    #![doc = include_str!("../guide/configuration.md")]
}

pub mod behind_a_proxy {
    #![doc = include_str!("../guide/behind_a_proxy.md")]
}

pub mod observability {
    #![doc = include_str!("../guide/observability.md")]
}

pub mod key_rotation {
    #![doc = include_str!("../guide/key_rotation.md")]
}

pub mod cloudflare_workers {
    #![doc = include_str!("../guide/cloudflare_workers.md")]
}

pub mod writing_a_driver {
    #![doc = include_str!("../guide/writing_a_driver.md")]
}
