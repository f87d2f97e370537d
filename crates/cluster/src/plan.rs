//! The create planner: what `redis-cli --cluster create --cluster-replicas N` does, as data.
