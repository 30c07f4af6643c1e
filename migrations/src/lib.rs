//! Schema migrations. One concern each; never edit one that has shipped: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_regions;
mod m20261127_000002_create_users;
mod m20261127_000003_create_workflow_versions;
mod m20261127_000004_create_cohorts;
mod m20261127_000005_create_projects;
mod m20261127_000006_create_events;
mod m20261127_000007_create_documents;
mod m20261127_000008_create_deadlines;
mod m20261127_000009_create_outbox;
mod m20261127_000010_create_api_tokens;
mod m20261127_000012_create_sessions;
mod m20261201_000013_corrections;
mod m20261201_000014_child_projects;
mod m20261201_000015_create_deadline_checks;
mod m20261201_000016_scan_documents;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_regions::Migration),
            Box::new(m20261127_000002_create_users::Migration),
            Box::new(m20261127_000003_create_workflow_versions::Migration),
            Box::new(m20261127_000004_create_cohorts::Migration),
            Box::new(m20261127_000005_create_projects::Migration),
            Box::new(m20261127_000006_create_events::Migration),
            Box::new(m20261127_000007_create_documents::Migration),
            Box::new(m20261127_000008_create_deadlines::Migration),
            Box::new(m20261127_000009_create_outbox::Migration),
            Box::new(m20261127_000010_create_api_tokens::Migration),
            Box::new(m20261127_000012_create_sessions::Migration),
            Box::new(m20261201_000013_corrections::Migration),
            Box::new(m20261201_000014_child_projects::Migration),
            Box::new(m20261201_000015_create_deadline_checks::Migration),
            Box::new(m20261201_000016_scan_documents::Migration),
        ]
    }
}
