//! How to repair uncovered and open slots, as data, like `redis-cli --cluster fix`.
