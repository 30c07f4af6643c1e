//! The web service of csirt-incubator: the JSON API (`/api/v1`), the server-rendered pages, accounts, bearer
//! tokens and browser sessions, access control, evidence uploads, health and metrics. [`Application::build`] starts the very same thing in `main` and in
//! the tests.

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod password_policy;
pub mod routes;
pub mod sniff;

pub use app::{AppState, Application, StartupError};
pub use config::{LoginThrottleConfig, ServerConfig};
pub use error::{ApiError, Problem};
