//! The [`DedupStore`], [`StormCounter`], [`WindowStore`] and [`Outbox`] ports on Redis, shared by
//! every gateway replica.
//!
//! Keys (module `keys`): every component that comes from outside — a fingerprint, an alert name,
//! a window's name — is length-prefixed inside braces, `{<bytes>:<text>}`, so two different
//! components never share a key whatever they hold, and the braces are the key's hash tag.
//!
//! One fingerprint's window is one hash, `kubernaut:gateway:dedup:{64:<fingerprint>}` (the
//! hash tag puts every key a script touches in one slot, so Redis Cluster serves it too),
//! holding the window start `s` and the occurrence count `c`: about 230 bytes of Redis memory per
//! fingerprint (measured by `cargo bench -p gateway-tests --bench redis`). The first
//! occurrence is decided by one Lua script — exists? count it : create it with its TTL — so
//! exactly one caller per window gets `First` however many replicas race, and no key ever lives
//! without a TTL (the reference implementation's `INCR`-then-`EXPIRE` left some).
//!
//! Storm counts: per alert name two sorted sets, `…:storm:{<len>:<alert>}:signals` (by time) and
//! `…:storm:{<len>:<alert>}:resources` (by last hit), trimmed and counted by one script per signal.
//! Storm windows: `…:storm:window:{<len>:<name>}` hashes (version `v`, state `s`) replaced by
//! a compare-and-set script and listed in `…:storm:windows`; a deleted window keeps `v` until its
//! TTL ends, so a window opened again under its name never reuses a version. The index lives in
//! another slot than the windows, so windows need a single Redis (or a primary with replicas), not
//! a Cluster.
//!
//! The outbox: one hash `…:{outbox}:entries` (`<version>:<entry>` per key) and its version
//! counter `…:{outbox}:version`, one hash tag, put and removed by one script each; the only keys
//! without a TTL (an entry stays until its owner removes it).
//!
//! Connection: the `redis` crate's auto-reconnecting connection manager, made in the background
//! so the gateway starts (not ready) while Redis is down; every command has a timeout. While
//! Redis is unreachable every call fails with [`StoreError::Unavailable`](gateway_ports::StoreError)
//! at once (the app answers 503 + `Retry-After`, so the sender resends: nothing is lost), and a
//! health check every second keeps [`RedisStore::is_available`] true to the moment.
//!
//! Modules: `connection` (options, the connection and its health, the command wrapper), `keys`,
//! one per port (`dedup`, `storm_counter`, `windows`, `outbox`), and each port's Lua scripts in
//! `src/lua/`.
//!
//! [`DedupStore`]: gateway_ports::DedupStore
//! [`StormCounter`]: gateway_ports::StormCounter
//! [`WindowStore`]: gateway_ports::WindowStore
//! [`Outbox`]: gateway_ports::Outbox

mod connection;
mod dedup;
mod keys;
mod outbox;
mod redaction;
mod storm_counter;
mod topology;
mod windows;

pub use connection::{RedisOptions, RedisStore};
pub use redaction::{redacted, secrets_of};
