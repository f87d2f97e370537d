//! An async connection for operator commands (not the proxy's hot path).
