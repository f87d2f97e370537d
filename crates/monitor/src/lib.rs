//! Watches a Redis Cluster and what fronts it, raises alarms, and heals what it can.
//!
//! Pure parts, tested without sockets: [`model`] (the health of the whole system as data),
//! [`poll::build_model`] (raw answers to a model), [`rules`] (conditions over two successive
//! models), [`alarms`] (pending / firing / resolved), [`heal`] (an alarm to a healing plan, and
//! the guardrails), [`notify::payload`] (Alertmanager's webhook format), [`metrics::render`].
//! I/O at the edges: [`poll::Poller`], [`notify::send`], [`heal::apply`], [`server`], and
//! [`runner`], which ties them together for `redkeep monitor`.

pub mod alarms;
pub mod config;
pub mod heal;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod poll;
pub mod rules;
pub mod runner;
pub mod server;

pub use config::Config;
pub use model::Model;
