//! Accounts and bearer tokens: argon2id password hashes, random tokens of which only the SHA-256 is
//! stored, and failed logins slowed down per (email, client address) without ever locking the account.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use incubator_store::entities::users;
use incubator_store::users as users_repo;
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::access::{Caller, Role};
use crate::app::AppState;
use crate::config::LoginThrottleConfig;
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no randomness available: {0}")]
    Random(String),
}

/// OWASP's argon2id baseline: 19 MiB of memory, two passes, one lane.
fn params() -> Params {
    Params::new(19_456, 2, 1, None).unwrap_or_default()
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// Whether a stored hash was made with another algorithm or weaker parameters than today's: such a hash is
/// replaced the next time its owner signs in, the only moment the password is known.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let current = params();
    let weaker = Params::try_from(&hash).map_or(true, |p| {
        p.m_cost() < current.m_cost()
            || p.t_cost() < current.t_cost()
            || p.p_cost() < current.p_cost()
    });
    hash.algorithm != Algorithm::Argon2id.ident() || weaker
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) for the password, with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether the password matches the stored hash; a hash that does not parse matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A fresh bearer token: 32 random bytes, hex-encoded.
pub fn new_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How long after the request (and the throttle's delay) a refused sign-in is answered: well above an
/// argon2id verification at today's parameters, so that unknown and known emails take exactly as long.
const REFUSAL_TIME: std::time::Duration = std::time::Duration::from_millis(300);

/// The account an email and password sign in, for the API's tokens and the pages' sessions alike. Wrong
/// credentials and disabled accounts get the same answer; repeated failures from one address for one email
/// are answered more and more slowly, and an unknown email costs as long as a known one.
pub async fn check_credentials(
    state: &AppState,
    email: &str,
    password: String,
    ip: IpAddr,
) -> Result<users::Model, ApiError> {
    let started = tokio::time::Instant::now();
    let email = email.trim().to_lowercase();
    let delay = state.throttle().delay(&email, ip);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = users_repo::find_by_email(state.store().db(), &email).await?;
    let hash = user.as_ref().map_or_else(
        || state.dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let stored = hash.clone();
    let (matches, rehashed) = tokio::task::spawn_blocking(move || {
        let matches = verify_password(&password, &hash);
        let rehashed = (matches && needs_rehash(&hash)).then(|| hash_password(&password));
        (matches, rehashed)
    })
    .await
    .map_err(ApiError::internal)?;
    match user {
        Some(user) if matches && !user.disabled => {
            state.throttle().succeeded(&email, ip);
            if let Some(rehashed) = rehashed {
                upgrade_hash(state, &user, &stored, rehashed).await;
            }
            Ok(user)
        }
        _ => {
            state.throttle().failed(&email, ip);
            state.metrics().login_failed();
            tracing::warn!(%ip, "login refused");
            // Hashing a dummy password for an unknown email was measured to leave a known account's
            // refusal about a quarter slower (tests/enumeration.rs): every refusal answers at the same
            // moment after the request, so its timing says nothing of the account.
            tokio::time::sleep_until(started + delay + REFUSAL_TIME).await;
            Err(ApiError::BadCredentials)
        }
    }
}

/// A failed upgrade costs nothing but waiting for the next sign-in: the sign-in itself goes on.
async fn upgrade_hash(
    state: &AppState,
    user: &users::Model,
    old: &str,
    new: Result<String, AuthError>,
) {
    let upgraded = match new {
        Ok(new) => users_repo::upgrade_password_hash(state.store().db(), user.id, old, &new)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match upgraded {
        Ok(true) => tracing::info!(
            user_id = user.id,
            "password hash upgraded to current parameters"
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(user_id = user.id, %error, "password hash upgrade failed"),
    }
}

/// Failed logins remembered per (email, client address).
#[derive(Debug)]
pub struct LoginThrottle {
    config: LoginThrottleConfig,
    failures: Mutex<HashMap<(String, IpAddr), Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Past this many remembered keys, stale ones are swept so that a spray of emails cannot grow the map.
const SWEEP_ABOVE: usize = 10_000;

impl LoginThrottle {
    pub fn new(config: LoginThrottleConfig) -> Self {
        Self {
            config,
            failures: Mutex::default(),
        }
    }

    /// How long to wait before checking the next attempt of this key.
    pub fn delay(&self, email: &str, ip: IpAddr) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = failures.get(&(email.to_owned(), ip)) else {
            return Duration::ZERO;
        };
        if f.last.elapsed() > self.config.window || f.count < self.config.free_failures {
            return Duration::ZERO;
        }
        let doublings = (f.count - self.config.free_failures).min(16);
        self.config
            .base_delay
            .saturating_mul(1 << doublings)
            .min(self.config.max_delay)
    }

    pub fn failed(&self, email: &str, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > SWEEP_ABOVE {
            let window = self.config.window;
            failures.retain(|_, f| f.last.elapsed() <= window);
        }
        let now = Instant::now();
        let entry = failures.entry((email.to_owned(), ip)).or_insert(Failures {
            count: 0,
            last: now,
        });
        if entry.last.elapsed() > self.config.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    pub fn succeeded(&self, email: &str, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&(email.to_owned(), ip));
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
}

/// Every API route but login, health, metrics and the OpenAPI document takes a [`Caller`]: a request
/// without a valid token never reaches a handler.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let digest = token_digest(token);
        let user = state
            .store()
            .authenticate(&digest)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let role = Role::parse(&user.role).ok_or_else(|| {
            ApiError::internal(format!(
                "account {} has an unknown role `{}`",
                user.id, user.role
            ))
        })?;
        Ok(Caller {
            user_id: user.id,
            email: user.email,
            name: user.name,
            role,
            region: user.region_code,
            token_sha256: digest,
        })
    }
}

/// The address of the client a request comes from, as login throttling and logs see it: the TCP peer, or,
/// when the peer is one of [`crate::config::ServerConfig::trusted_proxies`], what that proxy says in
/// `X-Forwarded-For`. Every handler that needs the client's address takes this, never `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| ApiError::internal("the server runs without connection information"))?;
        Ok(ClientIp(client_ip(
            peer.ip(),
            &parts.headers,
            &state.config().trusted_proxies,
        )))
    }
}

/// Walks `X-Forwarded-For` from the right (the hop nearest to us) while the hops are trusted proxies: the
/// first address that is not one is the client. A peer that is not a trusted proxy could have written
/// anything in the header, so then the header is not read at all; an entry that is not an address ends
/// the walk at the last hop believed.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let headers = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", v.parse().unwrap());
            }
            map
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &spoofed, &proxies),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), &spoofed, &[]), ip("10.1.2.3"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &spoofed, &proxies),
            ip("203.0.113.7")
        );
        // The client may prepend anything; only what our own proxies appended counts.
        let chained = headers(&["1.1.1.1, 203.0.113.7", "10.9.9.9"]);
        assert_eq!(client_ip(ip("::1"), &chained, &proxies), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &headers(&[]), &proxies),
            ip("10.1.2.3")
        );
        let garbled = headers(&["203.0.113.7, bogus, 10.2.2.2"]);
        assert_eq!(
            client_ip(ip("10.1.2.3"), &garbled, &proxies),
            ip("10.2.2.2")
        );
        let with_port = headers(&["203.0.113.7:4711"]);
        assert_eq!(
            client_ip(ip("10.1.2.3"), &with_port, &proxies),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn hashes_are_argon2id_with_the_chosen_parameters() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("Correct horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn failures_slow_down_without_locking() {
        let config = LoginThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            window: Duration::from_secs(60),
        };
        let throttle = LoginThrottle::new(config);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let delays: Vec<_> = (0..5)
            .map(|_| {
                throttle.failed("a@b.fr", ip);
                throttle.delay("a@b.fr", ip)
            })
            .collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 200, 300, 300]);
        assert_eq!(
            throttle.delay("other@b.fr", ip),
            Duration::ZERO,
            "per email"
        );
        assert_eq!(
            throttle.delay("a@b.fr", [10, 0, 0, 1].into()),
            Duration::ZERO,
            "per address"
        );
        throttle.succeeded("a@b.fr", ip);
        assert_eq!(throttle.delay("a@b.fr", ip), Duration::ZERO);
    }
}
