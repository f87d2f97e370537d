//! The bookkeeping of one load task, pure: which value each key should hold, what a read
//! says about it, and how long the task went without a successful reply.
//!
//! Task `t` of run `r` writes key `drill:{r}:{t}:{k}` with values `t:k:seq`, `seq` growing
//! (the run id keeps an earlier run's keys from being read as this run's). A read is
//! *wrong* when it holds a value this task never wrote to that key (another key's value, or a
//! seq not yet sent); *stale* when it is older than a write already acknowledged (the
//! acknowledged write was lost); fine otherwise. After the drill every key is read once more:
//! a key older than its last acknowledged write is an acknowledged write lost.

use std::time::{Duration, Instant};

/// What a read of one key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadVerdict {
    /// The last acknowledged write or a newer one that was sent (its reply may have been lost).
    Current,
    /// Older than the last acknowledged write, or missing after one: that write was lost.
    Stale,
    /// Not a value this task wrote to this key.
    Wrong,
}

/// One task's record.
#[derive(Debug, Clone)]
pub struct Book {
    /// Tells this run's keys from an earlier run's.
    pub run: u64,
    pub task: usize,
    /// Per key: the highest seq acknowledged with OK (0: none).
    acked: Vec<u64>,
    /// Per key: the highest seq sent.
    sent: Vec<u64>,
    next_seq: u64,
    pub ok: u64,
    pub errors: u64,
    pub acked_writes: u64,
    pub wrong: u64,
    pub stale: u64,
    last_success: Instant,
    pub longest_gap: Duration,
    /// When the longest gap began (the last success before it).
    pub longest_gap_from: Instant,
    /// A few distinct error texts, for the report.
    pub error_samples: Vec<String>,
}

impl Book {
    pub fn new(run: u64, task: usize, keys: usize, start: Instant) -> Book {
        Book {
            run,
            task,
            acked: vec![0; keys],
            sent: vec![0; keys],
            next_seq: 1,
            ok: 0,
            errors: 0,
            acked_writes: 0,
            wrong: 0,
            stale: 0,
            last_success: start,
            longest_gap: Duration::ZERO,
            longest_gap_from: start,
            error_samples: Vec::new(),
        }
    }

    pub fn keys(&self) -> usize {
        self.acked.len()
    }

    pub fn key(&self, index: usize) -> String {
        format!("drill:{}:{}:{index}", self.run, self.task)
    }

    /// The value of the next write to key `index`; marks it sent.
    pub fn next_value(&mut self, index: usize) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sent[index] = seq;
        format!("{}:{index}:{seq}", self.task)
    }

    /// The write of `value` to key `index` was acknowledged at `now`.
    pub fn acked(&mut self, index: usize, value: &str, now: Instant) {
        if let Some((_, _, seq)) = parse_value(value.as_bytes()) {
            self.acked[index] = self.acked[index].max(seq);
        }
        self.acked_writes += 1;
        self.success(now);
    }

    /// What a read of key `index` that returned `value` (`None`: no such key) says.
    pub fn verdict(&self, index: usize, value: Option<&[u8]>) -> ReadVerdict {
        let acked = self.acked[index];
        let Some(value) = value else {
            return if acked > 0 { ReadVerdict::Stale } else { ReadVerdict::Current };
        };
        match parse_value(value) {
            Some((task, key, seq))
                if task == self.task && key == index && seq <= self.sent[index] =>
            {
                if seq < acked {
                    ReadVerdict::Stale
                } else {
                    ReadVerdict::Current
                }
            }
            _ => ReadVerdict::Wrong,
        }
    }

    /// Records a read reply during the load.
    pub fn read(&mut self, index: usize, value: Option<&[u8]>, now: Instant) {
        match self.verdict(index, value) {
            ReadVerdict::Current => {}
            ReadVerdict::Stale => self.stale += 1,
            ReadVerdict::Wrong => {
                self.wrong += 1;
                let got = value.map(String::from_utf8_lossy);
                self.error(format!(
                    "WRONG value for {}: {got:?} (sent up to seq {}, acked {})",
                    self.key(index),
                    self.sent[index],
                    self.acked[index]
                ));
                self.errors -= 1; // a wrong value is counted as such, not as an error
            }
        }
        self.success(now);
    }

    pub fn error(&mut self, text: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 && !self.error_samples.contains(&text) {
            self.error_samples.push(text);
        }
    }

    fn success(&mut self, now: Instant) {
        self.ok += 1;
        self.note_gap(now);
        self.last_success = now;
    }

    /// Counts the time since the last success as a gap ending at `now` (also at the end).
    pub fn note_gap(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_success);
        if gap > self.longest_gap {
            self.longest_gap = gap;
            self.longest_gap_from = self.last_success;
        }
    }

    /// The keys with an acknowledged write, to check after the drill.
    pub fn acked_keys(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys()).filter(|&k| self.acked[k] > 0)
    }
}

/// `task:key:seq`.
fn parse_value(value: &[u8]) -> Option<(usize, usize, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(':');
    let task = parts.next()?.parse().ok()?;
    let key = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((task, key, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_judged_against_what_was_sent_and_acknowledged() {
        let start = Instant::now();
        let mut book = Book::new(9, 3, 4, start);
        assert_eq!(book.key(2), "drill:9:3:2");
        assert_eq!(book.verdict(2, None), ReadVerdict::Current, "never written");
        let first = book.next_value(2);
        book.acked(2, &first, start);
        let second = book.next_value(2); // sent, reply lost
        assert_eq!(book.verdict(2, Some(first.as_bytes())), ReadVerdict::Current);
        assert_eq!(book.verdict(2, Some(second.as_bytes())), ReadVerdict::Current);
        book.acked(2, &second, start);
        assert_eq!(book.verdict(2, Some(first.as_bytes())), ReadVerdict::Stale);
        assert_eq!(book.verdict(2, None), ReadVerdict::Stale, "an acknowledged write vanished");
        assert_eq!(book.verdict(2, Some(b"3:2:99")), ReadVerdict::Wrong, "never sent");
        assert_eq!(book.verdict(2, Some(b"3:1:1")), ReadVerdict::Wrong, "another key's value");
        assert_eq!(book.verdict(2, Some(b"4:2:1")), ReadVerdict::Wrong, "another task's value");
        assert_eq!(book.verdict(2, Some(b"garbage")), ReadVerdict::Wrong);
        assert_eq!(book.acked_keys().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn the_longest_gap_between_successes_is_kept() {
        let start = Instant::now();
        let mut book = Book::new(9, 0, 1, start);
        let at = |ms| start + Duration::from_millis(ms);
        book.read(0, None, at(10));
        book.error("ERR x".into());
        book.error("ERR x".into());
        book.read(0, None, at(510));
        book.read(0, None, at(520));
        book.note_gap(at(700));
        assert_eq!(book.longest_gap, Duration::from_millis(500));
        assert_eq!(book.longest_gap_from, at(10));
        assert_eq!((book.ok, book.errors, book.error_samples.len()), (3, 2, 1));
    }
}
