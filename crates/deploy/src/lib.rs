//! Deployment: local `redis-server` supervision ([`local`]), free ports for tests ([`ports`]),
//! process handling by verified pid ([`process`]), and a throw-away cluster for integration
//! tests ([`testing`]), keepalived configuration and supervision for a floating IP ([`keepalived`]), and the
//! multi-host lab of network namespaces ([`lab`], [`netns`]), and deployments on Kubernetes and
//! Docker Swarm ([`engines`]).

pub mod controller;
pub mod drill;
pub mod engines;
pub mod health;
pub mod keepalived;
pub mod lab;
pub mod local;
pub mod netns;
pub mod ports;
pub mod process;
pub mod testing;
pub mod tls;

pub use local::{DeployError, LocalSpec, Manifest};
