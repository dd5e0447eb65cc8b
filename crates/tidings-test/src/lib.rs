//! Test harness for tidings: a real TCP fault-injection proxy, an in-memory transport pair and the independent-peer locators.
//!
//! * [`memory`]: [`memory::pair`], two connected in-memory `Transport`s for
//!   driving a hub or a session without sockets.
//! * [`proxy`]: [`FaultProxy`], a real TCP proxy on tokio that sits between a
//!   client and a server on loopback and injects faults on command: delay,
//!   abrupt resets (also in the middle of application data), refused
//!   connections.
//! * [`udp_proxy`]: [`UdpFaultProxy`], a real UDP proxy for QUIC /
//!   WebTransport: drop (blackhole, loss), delay, rebind.
//! * [`suite`]: the fault, resume and bad-input scenarios every transport's
//!   tests run with its own connector and server.
//! * [`peers`]: finds the Python venv and Node modules that `cargo xtask setup`
//!   installs, skips (or, with `TIDINGS_REQUIRE_PEERS=1`, fails) tests whose
//!   peer is missing, and runs peer scripts as child processes with a hard
//!   timeout.
//! * [`backends`]: the six scenarios every `Broker` + `Store` backend
//!   (Redis, PostgreSQL, NATS) runs against its real service.
//! * [`services`]: URLs of the shared PostgreSQL, Redis and NATS, unique
//!   names per test, loud skips (failures under `TIDINGS_REQUIRE_SERVICES=1`).
//! * [`tls`]: [`tls::TestCa`], a throw-away CA and server certificate for
//!   wss:// and https:// tests.
//!
//! Servers under test bind `127.0.0.1:0`; no free-port helper is provided.

pub mod backends;
pub mod memory;
pub mod peers;
pub mod proxy;
pub mod services;
pub mod suite;
pub mod tls;
pub mod udp_proxy;

pub use peers::{PeerError, PeerMissing};
pub use proxy::{FaultProxy, MidFrameCut, ProxyHandle, ProxyStats};
pub use udp_proxy::{UdpFaultProxy, UdpProxyStats};
