//! sea-orm entities, one per table. Queries live in the repository modules, not here.

pub mod api_tokens;
pub mod cohorts;
pub mod deadlines;
pub mod document_reviews;
pub mod documents;
pub mod events;
pub mod links;
pub mod outbox;
pub mod projects;
pub mod regions;
pub mod reminders_sent;
pub mod requirements;
pub mod service_secrets;
pub mod sessions;
pub mod users;
pub mod workflow_versions;
