//! One model of a cluster, parsed from `CLUSTER NODES` (text) or `CLUSTER SHARDS` (RESP) as
//! Redis 7.0 prints them. Filled in by the cluster helper; see its module docs.
