//! Which arguments of a request are keys, and whether each is read or written, from the
//! command's key specs (`COMMAND`'s 9th field), as Redis' `getKeysUsingKeySpecs` finds them
//! for its ACL check. The proxy's routing finds key positions its own way
//! ([`crate::commands::key_positions`]); ACL read/write patterns (`%R~`, `%W~`) also need each
//! key's access, which only the specs give.

use resp::Value;

use crate::commands::Args;

/// What a key spec's command does with its keys: `ACCESS` reads it, `INSERT`/`DELETE`/
/// `UPDATE` write it (Redis' ACL maps the flags so; `RO`/`RW` alone say neither).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

impl Access {
    pub fn union(self, other: Access) -> Access {
        Access { read: self.read || other.read, write: self.write || other.write }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub access: Access,
    /// Not a key (SORT's BY pattern, ...): skipped.
    pub not_key: bool,
    /// The spec may miss keys: Redis then asks the command's own key finder.
    pub incomplete: bool,
    /// The access depends on the arguments (SET ... GET, BITFIELD GET/SET).
    pub variable_flags: bool,
    pub begin: Begin,
    pub find: Find,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    Index(i64),
    /// The first key follows `keyword`, searched from `start_from` (negative: from the end,
    /// backwards).
    Keyword {
        keyword: Box<[u8]>,
        start_from: i64,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    /// Keys every `step` up to `last` (relative to the first; negative counts from the end of
    /// the arguments, or with `limit` a fraction of what is left).
    Range {
        last: i64,
        step: i64,
        limit: i64,
    },
    /// A count at `count_at` (relative to the first), keys from `first` every `step`.
    KeyNum {
        count_at: i64,
        first: i64,
        step: i64,
    },
    Unknown,
}

/// The key specs of one `COMMAND` entry's 9th field; unreadable specs become `Unknown`, so the
/// check falls back to the proxy's own key positions.
pub fn parse_specs(field: Option<&Value>) -> Box<[KeySpec]> {
    field.and_then(Value::as_list).unwrap_or(&[]).iter().map(parse_spec).collect()
}

fn parse_spec(spec: &Value) -> KeySpec {
    let mut out = KeySpec {
        access: Access::default(),
        not_key: false,
        incomplete: false,
        variable_flags: false,
        begin: Begin::Unknown,
        find: Find::Unknown,
    };
    for flag in field(spec, b"flags").and_then(Value::as_list).unwrap_or(&[]) {
        match flag.as_bytes().unwrap_or(b"").to_ascii_lowercase().as_slice() {
            b"access" => out.access.read = true,
            b"insert" | b"delete" | b"update" => out.access.write = true,
            b"not_key" => out.not_key = true,
            b"incomplete" => out.incomplete = true,
            b"variable_flags" => out.variable_flags = true,
            _ => {}
        }
    }
    if let Some(begin) = field(spec, b"begin_search") {
        let inner = field(begin, b"spec");
        out.begin = match field(begin, b"type").and_then(Value::as_bytes) {
            Some(b"index") => {
                inner.and_then(|s| int(s, b"index")).map_or(Begin::Unknown, Begin::Index)
            }
            Some(b"keyword") => match (
                inner.and_then(|s| field(s, b"keyword")).and_then(Value::as_bytes),
                inner.and_then(|s| int(s, b"startfrom")),
            ) {
                (Some(k), Some(start_from)) => Begin::Keyword { keyword: k.into(), start_from },
                _ => Begin::Unknown,
            },
            _ => Begin::Unknown,
        };
    }
    if let Some(find) = field(spec, b"find_keys") {
        let inner = field(find, b"spec");
        let get = |name: &[u8]| inner.and_then(|s| int(s, name));
        out.find = match field(find, b"type").and_then(Value::as_bytes) {
            Some(b"range") => match (get(b"lastkey"), get(b"keystep"), get(b"limit")) {
                (Some(last), Some(step), Some(limit)) => Find::Range { last, step, limit },
                _ => Find::Unknown,
            },
            Some(b"keynum") => match (get(b"keynumidx"), get(b"firstkey"), get(b"keystep")) {
                (Some(count_at), Some(first), Some(step)) => Find::KeyNum { count_at, first, step },
                _ => Find::Unknown,
            },
            _ => Find::Unknown,
        };
    }
    out
}

/// A field of a RESP3 map or of RESP2's flat `[name, value, ...]` array.
fn field<'a>(value: &'a Value, name: &[u8]) -> Option<&'a Value> {
    match value {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| k.as_bytes() == Some(name)).map(|(_, v)| v),
        _ => value
            .as_list()?
            .chunks(2)
            .find(|pair| pair[0].as_bytes() == Some(name))
            .and_then(|pair| pair.get(1)),
    }
}

fn int(value: &Value, name: &[u8]) -> Option<i64> {
    match field(value, name)? {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

/// The access of every key spec together: the fallback when specs cannot place each key.
pub fn union_access(specs: &[KeySpec]) -> Access {
    specs.iter().filter(|s| !s.not_key).fold(Access::default(), |a, s| a.union(s.access))
}

/// Whether the specs can place every key with its access for this command (Redis prefers
/// the specs unless one has variable flags).
pub fn specs_are_exact(specs: &[KeySpec]) -> bool {
    !specs.is_empty() && !specs.iter().any(|s| s.variable_flags)
}

/// The key specs cannot place the keys of these arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlaced;

/// Calls `each(position, access)` for every key the specs find in `args`, as Redis'
/// `getKeysUsingKeySpecs` does; stops early when `each` returns false. `Err(NotPlaced)` when a spec
/// cannot be followed for these arguments (unknown, incomplete or out of bounds): the caller
/// then falls back to positions found another way. No allocation.
pub fn for_each_key(
    specs: &[KeySpec],
    args: &(impl Args + ?Sized),
    mut each: impl FnMut(usize, Access) -> bool,
) -> Result<(), NotPlaced> {
    let argc = args.count() as i64;
    for spec in specs.iter().filter(|s| !s.not_key) {
        let Some(first) = first_key(spec, args, argc)? else { continue };
        let (first, last, step) = match spec.find {
            Find::Range { last, step, limit } => {
                let end = if last >= 0 {
                    first + last
                } else if limit == 0 {
                    argc + last
                } else {
                    first + ((argc - first) / limit + last)
                };
                (first, end, step)
            }
            Find::KeyNum { count_at, first: first_offset, step } => {
                let at = first + count_at;
                if count_at >= argc || at >= argc {
                    return Err(NotPlaced);
                }
                let count = std::str::from_utf8(args.arg(at as usize))
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|&n| n >= 0)
                    .ok_or(NotPlaced)?;
                let first = first + first_offset;
                (first, first + count - 1, step)
            }
            Find::Unknown => return Err(NotPlaced),
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return Err(NotPlaced);
        }
        let mut i = first;
        while i <= last {
            if !each(i as usize, spec.access) {
                return Ok(());
            }
            i += step;
        }
        if spec.incomplete {
            return Err(NotPlaced);
        }
    }
    Ok(())
}

/// Where a spec's keys start, `None` when its keyword is absent (no keys from it).
fn first_key(
    spec: &KeySpec,
    args: &(impl Args + ?Sized),
    argc: i64,
) -> Result<Option<i64>, NotPlaced> {
    match &spec.begin {
        Begin::Index(i) => Ok(Some(*i)),
        Begin::Keyword { keyword, start_from } => {
            let forward = *start_from > 0;
            let start = if forward { *start_from } else { argc + start_from };
            let end = if forward { argc - 1 } else { 1 };
            let mut i = start;
            while i != end {
                if i >= argc || i < 1 {
                    break;
                }
                if args.arg(i as usize).eq_ignore_ascii_case(keyword) {
                    return Ok(Some(i + 1));
                }
                i += if start <= end { 1 } else { -1 };
            }
            Ok(None)
        }
        Begin::Unknown => Err(NotPlaced),
    }
}
