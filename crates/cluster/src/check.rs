//! What is wrong with a cluster, from every node's own view of it.
