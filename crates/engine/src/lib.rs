//! The workflow engine: definitions loaded from YAML, checked as graphs, executed as pure functions.
//! No I/O happens here: files are read by callers, time is passed in.

pub mod model;

mod analysis;
mod correction;
mod definition;
mod duration;
mod error;
mod exec;
mod export;
mod guard;
mod load;
mod locate;
mod migration;
mod reminder;
mod runtime;

pub use analysis::{CriticalPath, Forecast, GoalVerdict, PlannedPath, StagePlan};
pub use correction::{CorrectionKind, correction_key, correction_requirement};
pub use definition::{
    ACCOUNT_ROLES, Anchor, CREATE_TRANSITION, DOCUMENT_KINDS, Deadline, DeadlineRule, Field, Goal,
    Milestone, Planned, ReminderPlan, ReminderTemplates, Requirement, RoleHolder, State,
    Transition, Workflow,
};
pub use duration::{CalendarDuration, DurationError, start_of_local_day};
pub use error::{FieldError, LoadError, LoadErrors};
pub use exec::{is_milestone_key, milestone_key};
pub use locate::Location;
pub use migration::{
    DeadlineChange, DueSide, LiveDeadline, MigrationPlan, MigrationRefused, RebasedReminders,
    StepChange, plan_migration, rebase_reminders,
};
pub use reminder::ReminderStep;
pub use runtime::*;
