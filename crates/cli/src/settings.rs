//! The program's one typed configuration, in layers: built-in defaults < a TOML file (`--config FILE`,
//! `INCUBATOR_CONFIG`, else `./incubator.toml` when present) < environment variables (`INCUBATOR_SECTION__KEY`
//! and the older names kept working) < command-line flags. Every value remembers where it came from, so
//! that a wrong one is reported with its key and its source. From it come the libraries' own typed configs
//! ([`ServerConfig`], [`MailConfig`], [`DbConfig`]); docs/configuration.md lists every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use incubator_antivirus::{ClamdAddress, ScannerConfig};
use incubator_mailer::MailConfig;
use incubator_mailer::config::{DEFAULT_MAIL_FROM, DEFAULT_PUBLIC_URL};
use incubator_server::{LoginThrottleConfig, ServerConfig};
use incubator_store::{DbConfig, SqliteSync, Store};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

/// The file read when neither `--config` nor `INCUBATOR_CONFIG` names one, if it exists.
const DEFAULT_FILE: &str = "incubator.toml";

/// The example configuration at the repository's root: it sets every key, so it also gives the example
/// shown with a wrong value.
const EXAMPLE: &str = include_str!("../../../incubator.example.toml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub mail: MailSection,
    pub sessions: SessionsSection,
    pub login_throttle: LoginThrottleSection,
    pub log: LogSection,
    pub metrics: MetricsSection,
    pub antivirus: AntivirusSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSection {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub workflows: PathBuf,
    #[serde(with = "unset_if_empty")]
    pub public_url: Option<String>,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<TrustedProxy>,
    pub max_upload_bytes: usize,
    pub max_json_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSection {
    #[serde(with = "unset_if_empty")]
    pub url: Option<String>,
    pub sqlite_synchronous: SqliteSynchronous,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailSection {
    #[serde(with = "unset_if_empty")]
    pub smtp_url: Option<String>,
    pub from: String,
    pub templates: PathBuf,
    #[serde(with = "unset_if_empty")]
    pub outbox_dir: Option<PathBuf>,
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    pub batch_size: u64,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub gather: Duration,
    #[serde(with = "humantime_serde")]
    pub scheduler_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub smtp_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionsSection {
    #[serde(with = "humantime_serde")]
    pub token_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginThrottleSection {
    pub free_failures: u32,
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSection {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    #[serde(with = "unset_if_empty")]
    pub bearer_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AntivirusSection {
    #[serde(with = "unset_if_empty")]
    pub clamd: Option<ClamdSetting>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

/// Where clamd listens: `tcp://host:port`, or its unix socket (`unix:///path` or an absolute path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClamdSetting(ClamdAddress);

impl TryFrom<String> for ClamdSetting {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse().map(ClamdSetting)
    }
}

impl From<ClamdSetting> for String {
    fn from(setting: ClamdSetting) -> String {
        setting.0.to_string()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Survives power loss.
    #[default]
    Full,
    /// Survives process crashes only.
    Normal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A proxy address or block (`10.0.0.5`, `10.0.0.0/8`, `::1`) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(TrustedProxy)
            .map_err(|_| {
                format!("`{text}` is neither an IP address nor a CIDR block such as 10.0.0.0/8")
            })
    }
}

impl From<TrustedProxy> for String {
    fn from(proxy: TrustedProxy) -> String {
        proxy.0.to_string()
    }
}

/// Optional values are written `""` when unset: TOML has no null, and an empty environment variable
/// reads the same way.
mod unset_if_empty {
    use serde::de::{DeserializeOwned, IntoDeserializer};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        T::deserialize(text.into_deserializer()).map(Some)
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        let server = ServerConfig::new("./data");
        Self {
            bind: server.bind,
            data_dir: server.data_dir,
            workflows: PathBuf::from("./workflows"),
            public_url: server.public_url,
            cors_origins: server.cors_allowed_origins,
            trusted_proxies: Vec::new(),
            max_upload_bytes: server.max_upload_bytes,
            max_json_bytes: server.max_json_bytes,
            request_timeout: server.request_timeout,
            upload_timeout: server.upload_timeout,
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        let db = DbConfig::default();
        Self {
            url: db.url,
            sqlite_synchronous: match db.sqlite_sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            },
            max_connections: db.max_connections,
            acquire_timeout: db.acquire_timeout,
        }
    }
}

impl Default for MailSection {
    fn default() -> Self {
        let mail = default_mail_config(Path::new("."));
        Self {
            smtp_url: mail.smtp_url,
            from: DEFAULT_MAIL_FROM.to_owned(),
            templates: PathBuf::from("./templates/email"),
            outbox_dir: None,
            max_attempts: mail.max_attempts,
            backoff_base: mail.backoff_base,
            backoff_cap: mail.backoff_cap,
            lease: mail.lease,
            batch_size: mail.batch_size,
            poll_interval: mail.poll_interval,
            gather: mail.gather,
            scheduler_interval: mail.scheduler_interval,
            smtp_timeout: mail.smtp_timeout,
        }
    }
}

/// The mailer's own defaults, around its built-in sender and address (which parse: a unit test says so).
fn default_mail_config(data_dir: &Path) -> MailConfig {
    let from = incubator_mailer::config::parse_mailbox(DEFAULT_MAIL_FROM)
        .expect("the built-in sender is a mailbox");
    let url = incubator_mailer::config::parse_public_url(DEFAULT_PUBLIC_URL)
        .expect("the built-in public URL parses");
    MailConfig::new(from, url, data_dir)
}

impl Default for AntivirusSection {
    fn default() -> Self {
        // The scanner's own defaults; the address is only a placeholder for them.
        let scanner =
            ScannerConfig::new(ClamdAddress::Unix(PathBuf::from("/run/clamav/clamd.ctl")));
        Self {
            clamd: None,
            timeout: scanner.timeout,
            poll_interval: scanner.poll_interval,
            backoff_base: scanner.backoff_base,
            backoff_cap: scanner.backoff_cap,
            lease: scanner.lease,
        }
    }
}

impl Default for SessionsSection {
    fn default() -> Self {
        let server = ServerConfig::new("./data");
        Self {
            token_lifetime: server.token_lifetime,
            idle_timeout: server.session_idle_timeout,
            absolute_timeout: server.session_lifetime,
        }
    }
}

impl Default for LoginThrottleSection {
    fn default() -> Self {
        let throttle = LoginThrottleConfig::default();
        Self {
            free_failures: throttle.free_failures,
            base_delay: throttle.base_delay,
            max_delay: throttle.max_delay,
            window: throttle.window,
        }
    }
}

/// The libraries' configs, built here and nowhere else.
impl Settings {
    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            url: self.database.url.clone(),
            sqlite_sync: match self.database.sqlite_synchronous {
                SqliteSynchronous::Full => SqliteSync::Full,
                SqliteSynchronous::Normal => SqliteSync::Normal,
            },
            max_connections: self.database.max_connections,
            acquire_timeout: self.database.acquire_timeout,
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<Store> {
        Store::open(&self.db_config(), &self.server.data_dir)
            .await
            .context("cannot open the database")
    }

    /// The service's config; `workflows_dir` is left for the caller, who decides what a missing folder
    /// means (a warning for `serve`, an error for `config check`).
    pub fn server_config(&self) -> ServerConfig {
        let server = &self.server;
        let mut config = ServerConfig::new(server.data_dir.clone());
        config.bind = server.bind;
        config.db = self.db_config();
        config.max_upload_bytes = server.max_upload_bytes;
        config.antivirus = self.antivirus.clamd.as_ref().map(|clamd| {
            let antivirus = &self.antivirus;
            let mut scanner = ScannerConfig::new(clamd.0.clone());
            scanner.timeout = antivirus.timeout;
            scanner.poll_interval = antivirus.poll_interval;
            scanner.backoff_base = antivirus.backoff_base;
            scanner.backoff_cap = antivirus.backoff_cap;
            scanner.lease = antivirus.lease;
            scanner
        });
        config.max_json_bytes = server.max_json_bytes;
        config.request_timeout = server.request_timeout;
        config.upload_timeout = server.upload_timeout;
        config.public_url = server.public_url.clone();
        config.cors_allowed_origins = server
            .cors_origins
            .iter()
            .filter(|o| !o.is_empty())
            .cloned()
            .collect();
        config.trusted_proxies = server.trusted_proxies.iter().map(|p| p.0).collect();
        config.metrics_bearer_token = self.metrics.bearer_token.clone();
        config.token_lifetime = self.sessions.token_lifetime;
        config.session_idle_timeout = self.sessions.idle_timeout;
        config.session_lifetime = self.sessions.absolute_timeout;
        let throttle = &self.login_throttle;
        config.login_throttle = LoginThrottleConfig {
            free_failures: throttle.free_failures,
            base_delay: throttle.base_delay,
            max_delay: throttle.max_delay,
            window: throttle.window,
        };
        config
    }

    /// The mailer's config; the sender and the public address are parsed here, so errors name their keys.
    pub fn mail_config(&self) -> anyhow::Result<MailConfig> {
        let mail = &self.mail;
        let from = incubator_mailer::config::parse_mailbox(&mail.from).context("mail.from")?;
        let url = incubator_mailer::config::parse_public_url(
            self.server
                .public_url
                .as_deref()
                .unwrap_or(DEFAULT_PUBLIC_URL),
        )
        .context("server.public_url")?;
        let mut config = MailConfig::new(from, url, &self.server.data_dir);
        config.smtp_url = mail.smtp_url.clone();
        if let Some(dir) = &mail.outbox_dir {
            config.outbox_dir = dir.clone();
        }
        config.max_attempts = mail.max_attempts;
        config.backoff_base = mail.backoff_base;
        config.backoff_cap = mail.backoff_cap;
        config.lease = mail.lease;
        config.batch_size = mail.batch_size;
        config.poll_interval = mail.poll_interval;
        config.gather = mail.gather;
        config.scheduler_interval = mail.scheduler_interval;
        config.smtp_timeout = mail.smtp_timeout;
        Ok(config)
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A wrong setting: which key, where it was given (`file:line:column`, a variable, a flag), what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub at: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(example) = example(&self.key) {
            write!(f, " (for example `{example}`)")?;
        }
        Ok(())
    }
}

/// `key = value` as the example configuration sets it.
fn example(key: &str) -> Option<String> {
    let (section, name) = key.split_once('.')?;
    let example: toml::Table = toml::from_str(EXAMPLE).ok()?;
    let value = example.get(section)?.get(name)?;
    Some(format!("{name} = {value}"))
}

/// A configuration file's name and text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
}

impl ConfigFile {
    /// The file named by `--config` / `INCUBATOR_CONFIG` (which must exist), else `./incubator.toml` if it
    /// exists, else none.
    pub fn find(named: Option<&Path>) -> anyhow::Result<Option<ConfigFile>> {
        let path = match named {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(None),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Ok(Some(ConfigFile { path, text }))
    }
}

/// Values from command-line flags, by key. A flag left out sets nothing, so lower layers show through.
#[derive(Debug, Default)]
pub struct Flags(Vec<(&'static str, &'static str, Result<toml::Value, String>)>);

impl Flags {
    pub fn set<T: Serialize>(&mut self, key: &'static str, flag: &'static str, value: Option<T>) {
        if let Some(value) = value {
            let value = toml::Value::try_from(value).map_err(|e| e.to_string());
            self.0.push((key, flag, value));
        }
    }
}

/// The layered settings, where each key's value came from, and the keys given that no setting has.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub sources: BTreeMap<String, Source>,
    pub unknown: Vec<Problem>,
    pub file: Option<PathBuf>,
}

/// The environment variables of earlier versions, each the same as one key, and the unit their number
/// was in (appended, so that `30` seconds reads `30s`). The unprefixed ones are the most common names for
/// the same thing; the prefixed names win over them, and `INCUBATOR_SECTION__KEY` over both.
const OLD_NAMES: [(&str, &str, &str); 17] = [
    ("DATABASE_URL", "database.url", ""),
    ("SMTP_URL", "mail.smtp_url", ""),
    ("MAIL_FROM", "mail.from", ""),
    ("PUBLIC_URL", "server.public_url", ""),
    ("INCUBATOR_SMTP_URL", "mail.smtp_url", ""),
    ("INCUBATOR_MAIL_FROM", "mail.from", ""),
    ("INCUBATOR_PUBLIC_URL", "server.public_url", ""),
    ("INCUBATOR_DATA_DIR", "server.data_dir", ""),
    (
        "INCUBATOR_SQLITE_SYNCHRONOUS",
        "database.sqlite_synchronous",
        "",
    ),
    ("INCUBATOR_BIND", "server.bind", ""),
    ("INCUBATOR_WORKFLOWS", "server.workflows", ""),
    ("INCUBATOR_TEMPLATES", "mail.templates", ""),
    ("INCUBATOR_MAX_UPLOAD_BYTES", "server.max_upload_bytes", ""),
    (
        "INCUBATOR_REQUEST_TIMEOUT_SECS",
        "server.request_timeout",
        "s",
    ),
    (
        "INCUBATOR_UPLOAD_TIMEOUT_SECS",
        "server.upload_timeout",
        "s",
    ),
    ("INCUBATOR_CORS_ORIGINS", "server.cors_origins", ""),
    (
        "INCUBATOR_TOKEN_LIFETIME_DAYS",
        "sessions.token_lifetime",
        "d",
    ),
];

/// The variable naming the configuration file; not a setting itself.
pub const CONFIG_VAR: &str = "INCUBATOR_CONFIG";

impl Settings {
    /// Layers the defaults, the file, the environment (`env`, as `std::env::vars()` gives it) and the
    /// flags. Wrong values are errors, every one listed; unknown keys are returned for the caller to warn
    /// about or refuse.
    pub fn load(
        file: Option<&ConfigFile>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Flags,
    ) -> Result<Loaded, Vec<Problem>> {
        let defaults = table_of(&Settings::default());
        let mut merged = defaults.clone();
        let mut sources: BTreeMap<String, Source> = leaves(&defaults)
            .map(|(key, _)| (key, Source::Default))
            .collect();
        let mut problems = Vec::new();
        let mut unknown = Vec::new();

        if let Some(file) = file {
            let values = read_file(file, &mut problems, &mut unknown);
            for (key, value) in values {
                set_leaf(&mut merged, &key, value);
                sources.insert(key, Source::File(file.path.clone()));
            }
        }

        // (rank, key, value, source): applied in rank order, so that a newer name wins over an older one.
        let mut overrides: Vec<(u8, String, toml::Value, Source)> = Vec::new();
        for (name, text) in env {
            if text.is_empty() || name == CONFIG_VAR {
                continue;
            }
            let (rank, key, text) =
                if let Some((_, key, unit)) = OLD_NAMES.iter().find(|(old, _, _)| *old == name) {
                    let rank = u8::from(name.starts_with("INCUBATOR_"));
                    (rank, (*key).to_owned(), format!("{text}{unit}"))
                } else if let Some(rest) = name.strip_prefix("INCUBATOR_") {
                    let key = rest.to_ascii_lowercase().replacen("__", ".", 1);
                    (2, key, text)
                } else {
                    continue;
                };
            let Some(default) = leaf(&defaults, &key) else {
                unknown.push(Problem {
                    key,
                    at: format!("environment variable {name}"),
                    message: "no such setting; variables are named INCUBATOR_SECTION__KEY, \
                              see docs/configuration.md"
                        .into(),
                });
                continue;
            };
            let at = format!("environment variable {name}");
            match typed_like(default, &text) {
                Ok(value) => overrides.push((rank, key, value, Source::Env(name))),
                Err(expected) => problems.push(Problem {
                    key,
                    at,
                    message: format!("`{text}` is not {expected}"),
                }),
            }
        }
        overrides.sort_by_key(|(rank, ..)| *rank);
        for (key, flag, value) in flags.0 {
            match value {
                Ok(value) => overrides.push((3, key.to_owned(), value, Source::Flag(flag))),
                Err(e) => problems.push(Problem {
                    key: key.to_owned(),
                    at: format!("flag {flag}"),
                    message: e,
                }),
            }
        }
        for (_, key, value, source) in overrides {
            // Checked alone against the defaults, so that the error is this value's and names its source.
            let mut alone = defaults.clone();
            set_leaf(&mut alone, &key, value.clone());
            if let Err(e) = Settings::deserialize(toml::Value::Table(alone)) {
                problems.push(Problem {
                    key,
                    at: source.to_string(),
                    message: e.message().to_owned(),
                });
                continue;
            }
            set_leaf(&mut merged, &key, value);
            sources.insert(key, source);
        }

        if !problems.is_empty() {
            problems.extend(unknown);
            return Err(problems);
        }
        let settings = Settings::deserialize(toml::Value::Table(merged)).map_err(|e| {
            vec![Problem {
                key: String::new(),
                at: "the settings together".into(),
                message: e.message().to_owned(),
            }]
        })?;
        Ok(Loaded {
            settings,
            sources,
            unknown,
            file: file.map(|f| f.path.clone()),
        })
    }
}

/// The file's known values by key, after checking its syntax and types (errors with line and column) and
/// noting its unknown keys.
fn read_file(
    file: &ConfigFile,
    problems: &mut Vec<Problem>,
    unknown: &mut Vec<Problem>,
) -> Vec<(String, toml::Value)> {
    let at = |offset: usize| {
        let (line, column) = line_column(&file.text, offset);
        format!("{}:{line}:{column}", file.path.display())
    };
    let document = match DeTable::parse(&file.text) {
        Ok(document) => document,
        Err(e) => {
            problems.push(Problem {
                key: String::new(),
                at: at(e.span().map_or(0, |s| s.start)),
                message: format!("not TOML: {}", e.message()),
            });
            return Vec::new();
        }
    };
    let mut ignored = Vec::new();
    let checked = toml::Deserializer::parse(&file.text).and_then(|de| {
        serde_ignored::deserialize::<_, _, Settings>(de, |path| ignored.push(path.to_string()))
    });
    if let Err(e) = checked {
        let offset = e.span().map_or(0, |s| s.start);
        problems.push(Problem {
            key: key_at(document.get_ref(), offset).unwrap_or_default(),
            at: at(offset),
            message: e.message().to_owned(),
        });
        return Vec::new();
    }
    for key in ignored {
        let offset = key_offset(document.get_ref(), &key);
        unknown.push(Problem {
            at: at(offset),
            message: "no such setting (see docs/configuration.md)".into(),
            key,
        });
    }
    let defaults = table_of(&Settings::default());
    let values: toml::Table = toml::from_str(&file.text).unwrap_or_default();
    leaves(&values)
        .filter(|(key, _)| leaf(&defaults, key).is_some())
        .map(|(key, value)| (key, value.clone()))
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The `section.key` whose entry covers `offset` in the document.
fn key_at(document: &DeTable<'_>, offset: usize) -> Option<String> {
    let covers = |key: &toml::Spanned<_>, value: &toml::Spanned<DeValue<'_>>| {
        (key.span().start..value.span().end.max(key.span().end)).contains(&offset)
    };
    let mut found = None;
    for (section, value) in document {
        if let DeValue::Table(table) = value.get_ref() {
            for (key, value) in table {
                if covers(key, value) {
                    return Some(format!("{}.{}", section.get_ref(), key.get_ref()));
                }
            }
        }
        if covers(section, value) {
            found = Some(section.get_ref().to_string());
        }
    }
    found
}

/// Where a `section.key` (or a `section`) is written in the document.
fn key_offset(document: &DeTable<'_>, path: &str) -> usize {
    let (section, name) = path.split_once('.').unwrap_or((path, ""));
    let Some((key, value)) = document.get_key_value(section) else {
        return 0;
    };
    match value.get_ref() {
        DeValue::Table(table) if !name.is_empty() => table
            .get_key_value(name)
            .map_or(key.span().start, |(k, _)| k.span().start),
        _ => key.span().start,
    }
}

fn table_of(settings: &Settings) -> toml::Table {
    toml::Table::try_from(settings).expect("the settings serialize to a TOML table")
}

/// Every `section.key` of a table and its value.
fn leaves(table: &toml::Table) -> impl Iterator<Item = (String, &toml::Value)> {
    table.iter().flat_map(|(section, values)| {
        values
            .as_table()
            .into_iter()
            .flatten()
            .map(move |(key, value)| (format!("{section}.{key}"), value))
    })
}

fn leaf<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let (section, name) = key.split_once('.')?;
    table.get(section)?.as_table()?.get(name)
}

fn set_leaf(table: &mut toml::Table, key: &str, value: toml::Value) {
    if let Some((section, name)) = key.split_once('.') {
        let section = table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(section) = section.as_table_mut() {
            section.insert(name.to_owned(), value);
        }
    }
}

/// An environment variable's text as a value of the same kind as the key's default: a number, a list
/// (comma-separated) or text. `Err` says what was expected.
fn typed_like(default: &toml::Value, text: &str) -> Result<toml::Value, &'static str> {
    match default {
        toml::Value::Integer(_) => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "a whole number"),
        toml::Value::Boolean(_) => text
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| "true or false"),
        toml::Value::Array(_) => Ok(toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(toml::Value::from)
                .collect(),
        )),
        _ => Ok(toml::Value::from(text)),
    }
}

/// Keys whose values are secrets, or URLs that may carry one.
const SECRET_KEYS: [&str; 1] = ["metrics.bearer_token"];
const URL_KEYS: [&str; 2] = ["database.url", "mail.smtp_url"];

impl Loaded {
    /// The effective settings as TOML, each value followed by its source, secrets hidden.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let table = table_of(&self.settings);
        for (section, values) in &table {
            out.push_str(&format!("[{section}]\n"));
            for (name, value) in values.as_table().into_iter().flatten() {
                let key = format!("{section}.{name}");
                let shown = match value.as_str() {
                    Some(text) if !text.is_empty() && SECRET_KEYS.contains(&key.as_str()) => {
                        toml::Value::from("***")
                    }
                    Some(text) if URL_KEYS.contains(&key.as_str()) => {
                        toml::Value::from(incubator_server::config::redact_url(text))
                    }
                    _ => value.clone(),
                };
                let source = self.sources.get(&key).unwrap_or(&Source::Default);
                out.push_str(&format!("{name} = {shown}  # {source}\n"));
            }
            out.push('\n');
        }
        out
    }

    /// Where a key's value came from, for messages about it.
    pub fn source(&self, key: &str) -> String {
        let source = self.sources.get(key).unwrap_or(&Source::Default);
        source.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn config_file(text: &str) -> ConfigFile {
        ConfigFile {
            path: PathBuf::from("conf/incubator.toml"),
            text: text.to_owned(),
        }
    }

    #[test]
    fn defaults_are_the_libraries_defaults() {
        let loaded = Settings::load(None, [], Flags::default()).unwrap();
        assert_eq!(loaded.settings, Settings::default());
        assert!(loaded.sources.values().all(|s| *s == Source::Default));
        let server = loaded.settings.server_config();
        let library = ServerConfig::new("./data");
        assert_eq!(
            (server.bind, server.request_timeout, server.token_lifetime),
            (
                library.bind,
                library.request_timeout,
                library.token_lifetime
            )
        );
        let mail = loaded.settings.mail_config().unwrap();
        assert_eq!(mail.max_attempts, 8);
        assert_eq!(mail.outbox_dir, Path::new("./data/outbox"));
        assert_eq!(mail.public_url.as_str(), DEFAULT_PUBLIC_URL);
    }

    #[test]
    fn file_then_environment_then_flags() {
        let file = config_file(
            "[server]\nbind = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\n\
                         [mail]\nmax_attempts = 3\nbackoff_cap = \"1h\"\n",
        );
        let env = env(&[
            ("INCUBATOR_SERVER__DATA_DIR", "/from/env"),
            ("INCUBATOR_SERVER__BIND", "127.0.0.1:2222"),
            ("INCUBATOR_MAIL__BACKOFF_CAP", "90m"),
            ("HOME", "/root"),
        ]);
        let mut flags = Flags::default();
        flags.set(
            "server.data_dir",
            "--data-dir",
            Some(PathBuf::from("/from/flag")),
        );
        let loaded = Settings::load(Some(&file), env, flags).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.server.data_dir, Path::new("/from/flag"));
        assert_eq!(s.server.bind, "127.0.0.1:2222".parse().unwrap());
        assert_eq!(s.mail.max_attempts, 3);
        assert_eq!(s.mail.backoff_cap, Duration::from_secs(90 * 60));
        assert_eq!(
            loaded.sources["server.data_dir"],
            Source::Flag("--data-dir")
        );
        assert_eq!(
            loaded.sources["server.bind"],
            Source::Env("INCUBATOR_SERVER__BIND".into())
        );
        assert_eq!(
            loaded.sources["mail.max_attempts"],
            Source::File("conf/incubator.toml".into())
        );
        assert_eq!(loaded.sources["mail.lease"], Source::Default);
    }

    #[test]
    fn older_variable_names_still_work_and_newer_ones_win() {
        let loaded = Settings::load(
            None,
            env(&[
                ("INCUBATOR_SMTP_URL", "smtp://new:25"),
                ("SMTP_URL", "smtp://old:25"),
                ("DATABASE_URL", "postgres://u:pw@db/x"),
                ("INCUBATOR_REQUEST_TIMEOUT_SECS", "45"),
                ("INCUBATOR_TOKEN_LIFETIME_DAYS", "2"),
                (
                    "INCUBATOR_CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("INCUBATOR_SQLITE_SYNCHRONOUS", "normal"),
                ("INCUBATOR_LOG__FORMAT", "json"),
                ("MAIL_FROM", ""),
            ]),
            Flags::default(),
        )
        .unwrap();
        let s = &loaded.settings;
        assert_eq!(s.mail.smtp_url.as_deref(), Some("smtp://new:25"));
        assert_eq!(s.database.url.as_deref(), Some("postgres://u:pw@db/x"));
        assert_eq!(s.server.request_timeout, Duration::from_secs(45));
        assert_eq!(s.sessions.token_lifetime, Duration::from_secs(2 * 86400));
        assert_eq!(
            s.server.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(s.database.sqlite_synchronous, SqliteSynchronous::Normal);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.mail.from, DEFAULT_MAIL_FROM, "an empty variable is unset");
        let both = Settings::load(
            None,
            env(&[
                ("INCUBATOR_MAIL__SMTP_URL", "smtp://newest:25"),
                ("INCUBATOR_SMTP_URL", "smtp://new:25"),
            ]),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(
            both.settings.mail.smtp_url.as_deref(),
            Some("smtp://newest:25")
        );
    }

    #[test]
    fn wrong_values_name_their_key_and_source() {
        let file =
            config_file("[server]\nbind = \"127.0.0.1:8080\"\n\n[mail]\nmax_attempts = \"many\"\n");
        let problems = Settings::load(Some(&file), [], Flags::default()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "mail.max_attempts");
        assert_eq!(problems[0].at, "conf/incubator.toml:5:16");
        let shown = problems[0].to_string();
        assert!(shown.contains("max_attempts = 8"), "an example: {shown}");

        let problems = Settings::load(
            None,
            env(&[
                ("INCUBATOR_SERVER__BIND", "everywhere"),
                ("INCUBATOR_MAIL__BATCH_SIZE", "lots"),
                ("INCUBATOR_SESSIONS__IDLE_TIMEOUT", "a while"),
                ("INCUBATOR_SERVER__TRUSTED_PROXIES", "10.0.0.0/8,proxy.lan"),
            ]),
            Flags::default(),
        )
        .unwrap_err();
        let mut named: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.at.as_str()))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                (
                    "mail.batch_size",
                    "environment variable INCUBATOR_MAIL__BATCH_SIZE"
                ),
                ("server.bind", "environment variable INCUBATOR_SERVER__BIND"),
                (
                    "server.trusted_proxies",
                    "environment variable INCUBATOR_SERVER__TRUSTED_PROXIES"
                ),
                (
                    "sessions.idle_timeout",
                    "environment variable INCUBATOR_SESSIONS__IDLE_TIMEOUT"
                ),
            ]
        );

        let problems = Settings::load(
            Some(&config_file("[server\nbind = 1")),
            [],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            problems[0].at.starts_with("conf/incubator.toml:1:"),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_are_reported_with_their_place() {
        let file = config_file(
            "[server]\nbind = \"127.0.0.1:8080\"\nbindd = \"x\"\n[mails]\nfrom = \"x\"\n",
        );
        let loaded = Settings::load(
            Some(&file),
            env(&[
                ("INCUBATOR_SERVER__PORT", "80"),
                ("INCUBATOR_NONSENSE", "1"),
            ]),
            Flags::default(),
        )
        .unwrap();
        let mut unknown: Vec<String> = loaded
            .unknown
            .iter()
            .map(|p| format!("{} {}", p.key, p.at))
            .collect();
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "mails conf/incubator.toml:4:2",
                "nonsense environment variable INCUBATOR_NONSENSE",
                "server.bindd conf/incubator.toml:3:1",
                "server.port environment variable INCUBATOR_SERVER__PORT",
            ]
        );
    }

    #[test]
    fn secrets_are_hidden_when_shown() {
        let loaded = Settings::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://app:s3cret@db/x"),
                ("SMTP_URL", "smtps://mailer:hunter2@mail.example:465"),
                ("INCUBATOR_METRICS__BEARER_TOKEN", "tok3n"),
            ]),
            Flags::default(),
        )
        .unwrap();
        let shown = loaded.render();
        for secret in ["s3cret", "hunter2", "tok3n"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown
                .contains("url = \"postgres://app:***@db/x\"  # environment variable DATABASE_URL"),
            "{shown}"
        );
        assert!(shown.contains("bearer_token = \"***\""), "{shown}");
    }

    #[test]
    fn the_example_sets_every_key() {
        let defaults = table_of(&Settings::default());
        let missing: Vec<String> = leaves(&defaults)
            .map(|(key, _)| key)
            .filter(|key| example(key).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "not in incubator.example.toml: {missing:?}"
        );
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let defaults = table_of(&Settings::default());
        let missing: Vec<String> = leaves(&defaults)
            .map(|(key, _)| key)
            .filter(|key| {
                let variable = format!("INCUBATOR_{}", key.replacen('.', "__", 1).to_uppercase());
                !doc.lines().any(|line| {
                    line.starts_with(&format!("| `{key}` |")) && line.contains(&variable)
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "keys without their row (with their INCUBATOR_ variable) in docs/configuration.md: {missing:?}"
        );
        for (old, key, _) in OLD_NAMES {
            assert!(
                doc.lines()
                    .any(|l| l.contains(&format!("`{old}`")) && l.contains(&format!("`{key}`"))),
                "{old} → {key} is not in docs/configuration.md"
            );
        }
    }
}
