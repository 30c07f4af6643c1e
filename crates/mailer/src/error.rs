use incubator_notify::TemplateError;
use incubator_store::StoreError;

/// What the mailer can fail with. Delivery failures of one mail are not errors of the worker: they are
/// recorded on the mail's outbox row (see [`crate::transport::SendFailure`]).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

pub type MailResult<T> = Result<T, MailError>;
