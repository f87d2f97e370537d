//! Operations that gather state from nodes and apply plans.
