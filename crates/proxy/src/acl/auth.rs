//! A client's authentication, as Redis 7 does it: before AUTH only AUTH, HELLO, QUIT and
//! RESET run (`-NOAUTH`); `AUTH pass` is the `default` user's, `AUTH user pass` and
//! `HELLO 3 AUTH user pass` any user's; a wrong pair or a disabled user gets `-WRONGPASS`.
//! Redis has no limit on guesses; the proxy, being the door on the network, limits failed
//! attempts per client address ([`AuthLimiter`]). Pure: the session keeps the state.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::user::{UserId, Users};
use crate::commands::{Args, CommandInfo};

pub const NOAUTH: &str = "NOAUTH Authentication required.";

/// HELLO without AUTH from a client that is not authenticated (Redis 7.0's words).
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already \
     authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate \
     the client and select the RESP protocol version at the same time";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user, wrong password or a user that is `off`: one answer for all, as Redis.
    WrongPass,
    /// `AUTH pass` while the default user needs no password.
    NoPasswordConfigured,
    Syntax,
    /// Too many failures from this address lately; try again after this long.
    Limited(Duration),
}

impl AuthError {
    /// The error line without `-` and CRLF.
    pub fn message(&self) -> String {
        match self {
            AuthError::WrongPass => {
                "WRONGPASS invalid username-password pair or user is disabled.".to_string()
            }
            AuthError::NoPasswordConfigured => "ERR AUTH <password> called without any \
                 password configured for the default user. Are you sure your configuration is \
                 correct?"
                .to_string(),
            AuthError::Syntax => "ERR syntax error".to_string(),
            AuthError::Limited(wait) => format!(
                "ERR too many failed AUTH attempts from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        }
    }
}

/// Whether a client authenticated as `user` (`None`: not yet) may send this command at all.
/// Runs before the rights check.
pub fn gate(user: Option<UserId>, info: &CommandInfo) -> Result<(), &'static str> {
    if user.is_none() && !info.flags.no_auth { Err(NOAUTH) } else { Ok(()) }
}

/// The user name (`None` for `AUTH pass`) and password of an AUTH request.
pub fn auth_args(args: &(impl Args + ?Sized)) -> Result<(Option<&[u8]>, &[u8]), AuthError> {
    match args.count() {
        2 => Ok((None, args.arg(1))),
        3 => Ok((Some(args.arg(1)), args.arg(2))),
        _ => Err(AuthError::Syntax),
    }
}

/// A user name and a password, as a request gave them.
pub type Credentials<'a> = (&'a [u8], &'a [u8]);

/// The `AUTH user pass` of a HELLO request, if it has one (`HELLO 3 AUTH u p SETNAME n`).
/// `Err` (Redis' error line) when AUTH lacks its two arguments.
pub fn hello_auth(args: &(impl Args + ?Sized)) -> Result<Option<Credentials<'_>>, String> {
    let mut i = 2;
    while i < args.count() {
        let rest = args.count() - i - 1;
        if args.arg(i).eq_ignore_ascii_case(b"AUTH") {
            if rest < 2 {
                let option = String::from_utf8_lossy(args.arg(i));
                return Err(format!("ERR Syntax error in HELLO option '{option}'"));
            }
            return Ok(Some((args.arg(i + 1), args.arg(i + 2))));
        }
        // SETNAME takes one argument; anything else is HELLO's own error to give.
        i += if args.arg(i).eq_ignore_ascii_case(b"SETNAME") { 2 } else { 1 };
    }
    Ok(None)
}

/// Checks a user name (`None`: the two-argument `AUTH pass`) and password.
pub fn authenticate(
    users: &Users,
    username: Option<&[u8]>,
    password: &[u8],
) -> Result<UserId, AuthError> {
    let name = username.unwrap_or(b"default");
    let id = std::str::from_utf8(name).ok().and_then(|n| users.id_of(n));
    if username.is_none() && id.is_some_and(|id| users.get(id).nopass) {
        return Err(AuthError::NoPasswordConfigured);
    }
    let id = id.ok_or(AuthError::WrongPass)?;
    let user = users.get(id);
    if user.enabled && user.password_matches(password) { Ok(id) } else { Err(AuthError::WrongPass) }
}

/// Failed AUTH attempts per client address, as a generic cell rate: `burst` failures at once,
/// then one per `interval`. Addresses with no recent failure are forgotten, and at most
/// `capacity` are remembered; with that many failing at once, new addresses are refused too
/// (a flood of guesses from many addresses is refused rather than let through).
#[derive(Debug, Clone)]
pub struct AuthLimiter {
    burst: u32,
    interval: Duration,
    capacity: usize,
    /// When each address' failures will have been forgiven (its "theoretical arrival time").
    forgiven_at: HashMap<IpAddr, Instant>,
}

impl AuthLimiter {
    pub fn new(burst: u32, interval: Duration, capacity: usize) -> AuthLimiter {
        AuthLimiter { burst: burst.max(1), interval, capacity, forgiven_at: HashMap::new() }
    }

    /// Whether an AUTH attempt from `ip` may be checked now; `Err(wait)` otherwise.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(&at) = self.forgiven_at.get(&ip) else {
            if self.forgiven_at.len() >= self.capacity {
                self.forget_forgiven(now);
                if self.forgiven_at.len() >= self.capacity {
                    return Err(self.interval);
                }
            }
            return Ok(());
        };
        let allowance = self.interval * self.burst;
        let after_one_more = at.max(now) + self.interval;
        if after_one_more.saturating_duration_since(now) > allowance {
            Err(after_one_more - allowance - now)
        } else {
            Ok(())
        }
    }

    /// Records a failed attempt from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.forgiven_at.len() >= self.capacity && !self.forgiven_at.contains_key(&ip) {
            self.forget_forgiven(now);
        }
        let at = self.forgiven_at.get(&ip).map_or(now, |&at| at.max(now));
        self.forgiven_at.insert(ip, at + self.interval);
    }

    fn forget_forgiven(&mut self, now: Instant) {
        self.forgiven_at.retain(|_, at| *at > now);
    }

    /// Addresses remembered (for tests and the stats page).
    pub fn tracked(&self) -> usize {
        self.forgiven_at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::user::parse_users_file;
    use crate::commands::CommandTable;

    fn users(file: &str) -> Users {
        Users::compile(&parse_users_file(file).unwrap(), &CommandTable::builtin()).unwrap()
    }

    #[test]
    fn only_auth_hello_quit_reset_before_auth() {
        let t = CommandTable::builtin();
        let info = |name: &str| t.lookup(&[name.as_bytes()][..]).unwrap();
        for name in ["AUTH", "HELLO", "QUIT", "RESET"] {
            assert_eq!(gate(None, info(name)), Ok(()), "{name}");
        }
        for name in ["PING", "GET", "ACL", "CLIENT"] {
            assert_eq!(gate(None, info(name)), Err(NOAUTH), "{name}");
            assert_eq!(gate(Some(0), info(name)), Ok(()));
        }
    }

    #[test]
    fn passwords_users_and_disabled_users() {
        let u = users("user alice on >a\nuser bob off >b\nuser default on >d\n");
        let alice = u.id_of("alice").unwrap();
        assert_eq!(authenticate(&u, Some(b"alice"), b"a"), Ok(alice));
        assert_eq!(authenticate(&u, Some(b"alice"), b"x"), Err(AuthError::WrongPass));
        assert_eq!(authenticate(&u, Some(b"bob"), b"b"), Err(AuthError::WrongPass), "off");
        assert_eq!(authenticate(&u, Some(b"nobody"), b"a"), Err(AuthError::WrongPass));
        assert_eq!(authenticate(&u, None, b"d"), u.id_of("default").ok_or(AuthError::WrongPass));
        assert_eq!(authenticate(&u, None, b"a"), Err(AuthError::WrongPass));
        let without_default = users("user alice on >a\n");
        assert_eq!(authenticate(&without_default, None, b"a"), Err(AuthError::WrongPass));
        let open = Users::unrestricted(&CommandTable::builtin());
        assert_eq!(authenticate(&open, None, b"x"), Err(AuthError::NoPasswordConfigured));
        assert_eq!(authenticate(&open, Some(b"default"), b"x"), Ok(0), "nopass takes any");
        assert_eq!(
            AuthError::WrongPass.message(),
            "WRONGPASS invalid username-password pair or user is disabled."
        );
    }

    #[test]
    fn auth_and_hello_arguments() {
        fn args(line: &str) -> Vec<&[u8]> {
            line.split(' ').map(str::as_bytes).collect()
        }
        assert_eq!(auth_args(args("AUTH p").as_slice()), Ok((None, &b"p"[..])));
        assert_eq!(auth_args(args("AUTH u p").as_slice()), Ok((Some(&b"u"[..]), &b"p"[..])));
        assert_eq!(auth_args(args("AUTH u p x").as_slice()), Err(AuthError::Syntax));
        assert_eq!(hello_auth(args("HELLO 3").as_slice()), Ok(None));
        assert_eq!(
            hello_auth(args("HELLO 3 SETNAME auth AUTH u p").as_slice()),
            Ok(Some((&b"u"[..], &b"p"[..])))
        );
        assert_eq!(
            hello_auth(args("HELLO 3 auth u").as_slice()),
            Err("ERR Syntax error in HELLO option 'auth'".to_string())
        );
    }

    #[test]
    fn failures_are_limited_per_address_and_forgiven_with_time() {
        let mut limiter = AuthLimiter::new(3, Duration::from_secs(1), 100);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t0), Ok(()));
            limiter.failed(a, t0);
        }
        assert_eq!(limiter.check(a, t0), Err(Duration::from_secs(1)));
        assert_eq!(limiter.check(b, t0), Ok(()), "another address is not affected");
        let later = t0 + Duration::from_secs(1);
        assert_eq!(limiter.check(a, later), Ok(()), "one more after an interval");
        limiter.failed(a, later);
        assert!(limiter.check(a, later).is_err());
        let much_later = t0 + Duration::from_secs(60);
        assert_eq!(limiter.check(a, much_later), Ok(()));
    }

    #[test]
    fn the_limiter_stays_bounded_and_refuses_when_full() {
        let mut limiter = AuthLimiter::new(1, Duration::from_secs(1), 2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        limiter.failed(ip(1), t0);
        limiter.failed(ip(2), t0);
        assert!(limiter.check(ip(3), t0).is_err(), "full of failing addresses: refused");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.check(ip(3), later), Ok(()), "forgiven ones make room");
        limiter.failed(ip(3), later);
        assert!(limiter.tracked() <= 2);
    }
}
