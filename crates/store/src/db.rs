//! Finding and opening the database: a SQLite file by default, PostgreSQL when `DATABASE_URL` says so.

use std::path::Path;
use std::time::Duration;

use incubator_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::pool::PoolOptions;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqlxPostgresConnector, SqlxSqliteConnector, TransactionTrait,
};

use crate::error::{StoreError, StoreResult};

/// How hard SQLite flushes a commit. FULL survives power loss; NORMAL only process crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `postgres://…` or `sqlite://PATH`; `None` means the embedded SQLite file in the data directory.
    pub url: Option<String>,
    pub sqlite_sync: SqliteSync,
    pub max_connections: u32,
    /// Longest a caller waits for a connection (and a connection attempt takes) before the database is
    /// taken as unreachable: what bounds the wait for a 503 while PostgreSQL is down.
    pub acquire_timeout: Duration,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: None,
            sqlite_sync: SqliteSync::Full,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl DbConfig {
    /// The URL to connect to: the configured one, else `DATA_DIR/incubator.sqlite3`.
    pub fn resolve_url(&self, data_dir: &Path) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("incubator.sqlite3").display()
            ),
        }
    }
}

/// Connects (creating the SQLite file if needed), applies pending migrations and seeds the regions.
pub async fn open(config: &DbConfig, data_dir: &Path) -> StoreResult<DatabaseConnection> {
    let url = config.resolve_url(data_dir);
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Invalid(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
    }
    let db = connect(&url, config).await?;
    migrate(&db).await?;
    crate::regions::seed(&db).await?;
    Ok(db)
}

pub async fn connect(url: &str, config: &DbConfig) -> StoreResult<DatabaseConnection> {
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e)))?
            .disable_statement_logging();
        let pool = pool_options(config)
            .connect_with(options)
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e)))?;
        return Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool));
    }
    if !url.starts_with("sqlite:") {
        // The URL may carry a password: it is not repeated here.
        return Err(StoreError::Invalid(
            "the database URL is neither postgres://… nor sqlite:…".into(),
        ));
    }
    let sync = match config.sqlite_sync {
        SqliteSync::Full => SqliteSynchronous::Full,
        SqliteSync::Normal => SqliteSynchronous::Normal,
    };
    let options = url
        .parse::<SqliteConnectOptions>()
        .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e)))?
        .disable_statement_logging()
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sync)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string())
        .create_if_missing(true);
    let pool = pool_options(config)
        .connect_with(options)
        .await
        .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e)))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// The log's size, in pages, past which a commit checkpoints it itself (SQLite's default is 1,000): only
/// reached when the store's own checkpoints (`crate::wal`) fall behind, or in a process that has no store.
const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// A connection that served a statement less than this long ago is handed out again without a ping.
const TRUSTED_WHILE_BUSY: Duration = Duration::from_secs(1);

/// The pool's settings. sqlx pings every connection it hands out, a round trip for each statement run
/// outside a transaction; a connection used within the last second is trusted instead (sqlx pings it when
/// it comes back to the pool, and a broken one is dropped there), so a busy service pays no extra round
/// trips while one that sat idle, perhaps across a database restart, still checks before it trusts.
fn pool_options<DB: sea_orm::sqlx::Database>(config: &DbConfig) -> PoolOptions<DB> {
    checked_when_idle(
        PoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(1)
            .acquire_timeout(config.acquire_timeout),
    )
}

/// Pings a connection before handing it out only if it sat idle for `TRUSTED_WHILE_BUSY` or longer.
fn checked_when_idle<DB: sea_orm::sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= TRUSTED_WHILE_BUSY {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The writer's own connections, one per lane (SQLite has one), opened on first use with `db`'s settings
/// and kept. On SQLite, a connection that began its transaction after another connection's commit starts
/// with an empty page cache, so a writer taking any pooled connection read most pages of every batch again;
/// alone to write, its own cache stays valid from one batch to the next (in one run a unit's writes went
/// from ~165 to ~120 µs, see BENCHMARKS.md). On PostgreSQL, a connection keeps the statements it
/// prepared, and the writes' statements, each a round's (`round`) or a change's own, are texts of their
/// own: the lanes' few connections prepare them once, where every pooled connection would prepare them
/// again. Nor do the writers wait for a connection while readers hold all of the pool's.
pub fn writer(db: &DatabaseConnection, lanes: u32) -> DatabaseConnection {
    if db.get_database_backend() == DbBackend::Postgres {
        let pool = db.get_postgres_connection_pool();
        let writer = writer_pool(lanes, pool.options().get_acquire_timeout())
            .connect_lazy_with((*pool.connect_options()).clone());
        return SqlxPostgresConnector::from_sqlx_postgres_pool(writer);
    }
    let pool = db.get_sqlite_connection_pool();
    let writer = writer_pool(lanes, pool.options().get_acquire_timeout())
        .connect_lazy_with((*pool.connect_options()).clone());
    SqlxSqliteConnector::from_sqlx_sqlite_pool(writer)
}

fn writer_pool<DB: sea_orm::sqlx::Database>(
    lanes: u32,
    acquire_timeout: Duration,
) -> PoolOptions<DB> {
    // Checked like the pool's: a lane left idle while the database went away (requests refused before
    // they reached the writer) would otherwise answer its first write after the database came back with
    // its dead connection's error.
    checked_when_idle(
        PoolOptions::new()
            .max_connections(lanes)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(acquire_timeout),
    )
}

/// Whether `error` says the database cannot be reached (refused or lost connection, no connection
/// within the acquire timeout, the server shutting down), rather than that a statement failed: the service
/// is then unavailable, not broken, and the same request may succeed once the database is back.
pub fn is_unreachable(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    match error {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match e {
            Error::Io(_)
            | Error::Tls(_)
            | Error::PoolTimedOut
            | Error::PoolClosed
            | Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception) and 57P01…57P03 (shutdown, cannot connect now).
            Error::Database(e) => e
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        },
        _ => false,
    }
}

/// Begins a transaction that will write. SQLite's BEGIN is deferred: a transaction that reads first and
/// writes later fails at once ("database is locked", no busy wait) if another connection wrote in between.
/// A write that matches nothing takes the write lock up front, waiting out the busy timeout instead.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("UPDATE projects SET id = id WHERE 0")
            .await?;
    }
    Ok(txn)
}

/// Applies pending migrations, refusing a database whose schema is newer than this binary knows.
///
/// On PostgreSQL several replicas may start at once against one database: the migrations run in one
/// transaction holding an advisory lock, so the first replica migrates and the others wait, then find nothing
/// left to do (PostgreSQL's DDL is transactional, so a failed migration leaves no half-made schema).
pub async fn migrate(db: &DatabaseConnection) -> StoreResult<()> {
    let applied = if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        let applied = Migrator::up(&txn, None).await;
        if applied.is_ok() {
            txn.commit().await?;
        }
        applied
    } else {
        // SQLite: one process owns the file; its write lock already serialises schema changes.
        Migrator::up(db, None).await
    };
    applied.map_err(|e| match e {
        // sea-orm-migration names a migration applied to the database but absent from this binary.
        DbErr::Custom(message) if message.contains("missing") => StoreError::Invalid(format!(
            "the database schema is newer than this program ({message}): run the newer version or restore a \
             backup"
        )),
        other => StoreError::Db(other),
    })
}

/// The advisory lock key replicas take while migrating: an arbitrary constant (`b"csirtmig"` as a number).
const MIGRATION_LOCK: i64 = 0x6373_6972_746d_6967;

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        DbBackend::MySql => "mysql",
    }
}

/// Creates the database `name` on the PostgreSQL server `server_url` points at and returns the URL of the new
/// database: tests and benchmarks each get a fresh one so that runs never collide.
pub async fn create_postgres_database(server_url: &str, name: &str) -> StoreResult<String> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Invalid(format!(
            "`{name}` is not a plain database name (lowercase letters, digits, underscores)"
        )));
    }
    let (base, _) = server_url.rsplit_once('/').ok_or_else(|| {
        StoreError::Invalid(format!("`{server_url}` names no database after the host"))
    })?;
    let admin = Database::connect(server_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    Ok(format!("{base}/{name}"))
}
