//! No account enumeration by timing (ASVS 5.0 V6.3.8): refusing an unknown email takes as long as refusing
//! a known one with a wrong password, over real HTTP, on both paths that take an email and a password — the
//! API's token endpoint and the page's sign-in form. (Changing one's password takes the email from the
//! session, and an admin resets a password by account id: neither lets anyone try emails.)
//!
//! Not a speed test: nothing here bounds how long a sign-in takes. It checks that the two refusals cannot
//! be told apart by their timing — the median of the pairs' ratios near 1 and the interquartile ranges
//! overlapping — which breaks when the unknown email skips the password hash (a hundredfold difference, not a few per cent).
//! Attempts come in pairs, one of each kind back to back, in alternating order, and the ratio is taken
//! within each pair: a change in the shared machine's load falls on both alike.
//! The login throttle keys on (email, address) whether the email exists or not; it is kept out of the
//! measure: each unknown email is new, the known one signs in correctly after each pair (which clears
//! its count), and the throttle is asked before every attempt that it would not delay it.

mod common;
mod pages_support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{PASSWORD, TestApp, TestDb};
use pages_support::Browser;
use reqwest::StatusCode;

/// Pairs of attempts (an unknown email, the known one) per path.
const PAIRS: usize = 40;
/// Largest ratio the pairs' median ratio may reach either way; a refusal that skipped the password hash
/// would be a hundred times faster.
const MEDIAN_RATIO: f64 = 1.25;
const KNOWN: &str = "officer@anssi.example";

#[derive(Debug, Clone, Copy)]
enum Path {
    Api,
    Page,
}

async fn refusals_of_unknown_and_known_emails_take_as_long(db: TestDb) {
    let app = common::spawn(db).await;
    app.account(KNOWN, "officer", None).await;
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut browser = Browser::new(&app);
    for path in [Path::Api, Path::Page] {
        // Each pair's two attempts run back to back, so the load of the machine they met is nearly the same.
        let mut pairs = Vec::new();
        for i in 0..PAIRS {
            let unknown = format!("nobody-{i}@region.example");
            let mut pair = [Duration::ZERO; 2];
            let order = if i.is_multiple_of(2) { [0, 1] } else { [1, 0] };
            for which in order {
                let email = if which == 0 { unknown.as_str() } else { KNOWN };
                assert!(
                    app.state.throttle().delay(email, loopback).is_zero(),
                    "the throttle would delay attempt {i} for {email}: the test would measure it"
                );
                pair[which] = refused(&app, &mut browser, path, email).await;
            }
            // Clears the known email's failures, untimed.
            app.login(KNOWN, PASSWORD).await;
            pairs.push(pair);
        }
        let unknown = quartiles(pairs.iter().map(|p| p[0].as_secs_f64()).collect());
        let known = quartiles(pairs.iter().map(|p| p[1].as_secs_f64()).collect());
        let ratio = quartiles(
            pairs
                .iter()
                .map(|p| p[0].as_secs_f64() / p[1].as_secs_f64())
                .collect(),
        )[1];
        eprintln!(
            "{path:?} sign-in refused, ms (first quartile, median, third): unknown email {:.1?}, known email \
             with a wrong password {:.1?}; median of the pairs' ratios {ratio:.3}",
            unknown.map(|s| s * 1000.0),
            known.map(|s| s * 1000.0),
        );
        assert!(
            (1.0 / MEDIAN_RATIO..=MEDIAN_RATIO).contains(&ratio),
            "{path:?}: refusing an unknown email takes {ratio:.2} times as long as a known one"
        );
        assert!(
            unknown[0] <= known[2] && known[0] <= unknown[2],
            "{path:?}: the interquartile ranges do not overlap: unknown {unknown:?}, known {known:?}"
        );
    }
    app.stop().await;
}

/// One refused sign-in with a wrong password, timed from the request to the end of the answer.
async fn refused(app: &TestApp, browser: &mut Browser, path: Path, email: &str) -> Duration {
    let password = "not the password of anyone";
    match path {
        Path::Api => {
            let started = Instant::now();
            let answer = app.try_login(email, password).await;
            let status = answer.status();
            let _ = answer.bytes().await;
            let took = started.elapsed();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{email}");
            took
        }
        Path::Page => {
            // The form's token comes first and is not part of the measure.
            let form = browser.get("/login").await;
            form.assert_html(StatusCode::OK);
            let token = form.csrf();
            let started = Instant::now();
            let answer = browser
                .post(
                    "/login",
                    &[
                        ("email", email),
                        ("password", password),
                        ("csrf_token", &token),
                    ],
                )
                .await;
            let took = started.elapsed();
            answer.assert_html(StatusCode::UNAUTHORIZED);
            took
        }
    }
}

/// First quartile, median and third quartile.
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_unstable_by(f64::total_cmp);
    [0.25, 0.5, 0.75].map(|q| values[((values.len() - 1) as f64 * q).round() as usize])
}

both_backends!(refusals_of_unknown_and_known_emails_take_as_long);
