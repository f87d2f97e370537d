//! Local deployment.
