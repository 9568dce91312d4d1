//! latchkey: a Redis-protocol server with native, server-side lock primitives.
//!
//! Use it three ways: run the `latchkey` binary in place of `redis-server`; embed
//! it in a Rust test with [`Server::builder`]; or talk to it with any Redis client.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = latchkey::Server::builder().start().await?;
//! server.set("greeting", "hello", None);
//! assert_eq!(server.get("greeting").as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! The map of modules and the concurrency model are in `ARCHITECTURE.md`.

pub mod acl;
pub mod background;
pub mod blocking;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connection;
mod embed;
pub mod error;
pub mod faults;
pub mod gate;
pub mod idle_spin;
pub mod keyspace;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod pause;
pub mod persist;
pub mod propagate;
pub mod protocol;
pub mod pubsub;
pub mod rdb;
pub mod reply;
pub mod scripting;
pub mod server;
pub mod session;
pub mod tls;
pub mod tracking;
pub mod types;
mod unix_conn;

pub use embed::{Server, ServerBuilder, ServerHandle};
