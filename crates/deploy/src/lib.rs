//! Deployment: local `redis-server` supervision ([`local`]), free ports for tests ([`ports`]),
//! process handling by verified pid ([`process`]), and a throw-away cluster for integration
//! tests ([`testing`]), keepalived configuration for a floating IP ([`keepalived`]).

pub mod keepalived;
pub mod local;
pub mod ports;
pub mod process;
pub mod testing;

pub use local::{DeployError, LocalSpec, Manifest};
