//! Signed links: a person without an account (a sponsoring CSIRT) uploads the evidence of one requirement of
//! one project, once, before the link expires.
//!
//! The token is `{id}.{expiry in Unix seconds}.{HMAC-SHA256 of both, hex}` under a key every replica shares
//! (generated once, kept in `service_secrets`). It is never stored: the row keeps the expiry and the first
//! use, and the token is recomputed from them when the mail is written.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use incubator_engine::RoleHolder;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use sha2::Sha256;

use crate::audit::normalize;
use crate::committer::UnitOfWork;
use crate::documents::{RecordDocument, record_document};
use crate::entities::{documents, links, service_secrets};
use crate::error::{StoreError, StoreResult};
use crate::events::NewEvent;
use crate::outbox::{self, Addressee, NewRow};
use crate::projects::{find, record};
use crate::workflows::WorkflowRegistry;

/// The `service_secrets` row holding the link signing key.
const SIGNING_KEY: &str = "link_signing_key";

/// The longest a link may stay usable: a link is an invitation to answer, not a standing credential.
pub const MAX_LIFETIME_DAYS: i64 = 366;

/// The mail that sends a link to its holder.
pub const INVITATION_TEMPLATE: &str = "link_invitation";

type HmacSha256 = Hmac<Sha256>;

/// The key links are signed with, created by the first replica that needs it (a racing replica's insert
/// is ignored and both read the one that won).
pub async fn signing_key(db: &impl ConnectionTrait) -> StoreResult<Vec<u8>> {
    if let Some(row) = service_secrets::Entity::find_by_id(SIGNING_KEY)
        .one(db)
        .await?
    {
        return decode_key(&row.value);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("no randomness for the link key: {e}")))?;
    service_secrets::Entity::insert(service_secrets::ActiveModel {
        name: Set(SIGNING_KEY.to_owned()),
        value: Set(hex::encode(bytes)),
        created_at: Set(normalize(Utc::now())),
    })
    .on_conflict(
        OnConflict::column(service_secrets::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let row = service_secrets::Entity::find_by_id(SIGNING_KEY)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the link signing key vanished".into()))?;
    decode_key(&row.value)
}

fn decode_key(value: &str) -> StoreResult<Vec<u8>> {
    hex::decode(value).map_err(|_| StoreError::Corrupt("the link signing key is not hex".into()))
}

fn mac(key: &[u8], id: i64, expires: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("link:{id}:{expires}").as_bytes());
    mac
}

/// The token of link `id` expiring at `expires_at`.
pub fn sign(key: &[u8], id: i64, expires_at: DateTime<Utc>) -> String {
    let expires = expires_at.timestamp();
    let tag = mac(key, id, expires).finalize().into_bytes();
    format!("{id}.{expires}.{}", hex::encode(tag))
}

/// The link id and expiry a token carries, if its signature holds (compared in constant time).
pub fn verify(key: &[u8], token: &str) -> StoreResult<(i64, DateTime<Utc>)> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::LinkInvalid);
    };
    let (Ok(id), Ok(expires), Ok(tag)) = (id.parse(), expires.parse(), hex::decode(tag)) else {
        return Err(StoreError::LinkInvalid);
    };
    mac(key, id, expires)
        .verify_slice(&tag)
        .map_err(|_| StoreError::LinkInvalid)?;
    let expires_at = DateTime::from_timestamp(expires, 0).ok_or(StoreError::LinkInvalid)?;
    Ok((id, expires_at))
}

/// The token of a stored link.
pub async fn token_of(db: &impl ConnectionTrait, link: &links::Model) -> StoreResult<String> {
    Ok(sign(&signing_key(db).await?, link.id, link.expires_at))
}

/// Why a link can no longer be used at `now`, if it cannot.
fn unusable(link: &links::Model, now: DateTime<Utc>) -> Option<StoreError> {
    if let Some(used_at) = link.used_at {
        return Some(StoreError::LinkUsed { used_at });
    }
    if let Some(revoked_at) = link.revoked_at {
        return Some(StoreError::LinkRevoked { revoked_at });
    }
    (now >= link.expires_at).then_some(StoreError::LinkExpired {
        expires_at: link.expires_at,
    })
}

/// The link a token names, checked signed, issued, and still usable at `now`.
pub async fn resolve(
    db: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> StoreResult<links::Model> {
    let (id, expires_at) = verify(&signing_key(db).await?, token)?;
    let link = links::Entity::find_by_id(id)
        .one(db)
        .await?
        // A token signed for another expiry than the row's was never issued.
        .filter(|l| l.expires_at.timestamp() == expires_at.timestamp())
        .ok_or(StoreError::LinkInvalid)?;
    match unusable(&link, now) {
        Some(refusal) => Err(refusal),
        None => Ok(link),
    }
}

/// A project's links, newest first.
pub async fn list(db: &impl ConnectionTrait, project_id: i64) -> StoreResult<Vec<links::Model>> {
    Ok(list_query(project_id).all(db).await?)
}

pub(crate) fn list_query(project_id: i64) -> sea_orm::Select<links::Entity> {
    links::Entity::find()
        .filter(links::Column::ProjectId.eq(project_id))
        .order_by_desc(links::Column::Id)
}

/// The person a link is for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHolder {
    pub email: String,
    pub name: String,
}

impl LinkHolder {
    /// Refuses an address a mail header could not carry as one mailbox, and an empty or multi-line name.
    pub fn parse(email: &str, name: &str) -> StoreResult<Self> {
        let email = email.trim();
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }) && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c));
        if !well_formed {
            return Err(StoreError::Invalid(format!(
                "`{email}` is not an email address: write it as name@domain.example"
            )));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "`name` must be the holder's name, on one line".into(),
            ));
        }
        Ok(Self {
            email: email.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Issues a link for a role the workflow gives to link holders, and mails it to its holder.
#[derive(Debug)]
pub struct IssueLink {
    pub registry: Arc<WorkflowRegistry>,
    pub project_id: i64,
    pub role: String,
    pub requirement: String,
    pub holder: LinkHolder,
    /// `fr` or `en`: the language of the mail.
    pub lang: String,
    pub expires_at: DateTime<Utc>,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for IssueLink {
    type Output = links::Model;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<links::Model> {
        let now = normalize(self.now);
        let expires_at = normalize(self.expires_at);
        let project = find(txn, self.project_id).await?;
        let workflow = self
            .registry
            .get(txn, &project.workflow_id, project.workflow_version)
            .await?;
        let link_roles: Vec<&str> = workflow
            .roles()
            .keys()
            .filter(|r| workflow.holder(r) == RoleHolder::Link)
            .map(String::as_str)
            .collect();
        if !link_roles.contains(&self.role.as_str()) {
            return Err(StoreError::Invalid(format!(
                "workflow `{}` gives no link to role `{}`: links are for {}",
                project.workflow_id,
                self.role,
                if link_roles.is_empty() {
                    "none of its roles".to_owned()
                } else {
                    link_roles.join(", ")
                }
            )));
        }
        if workflow.requirement(&self.requirement).is_none() {
            return Err(StoreError::Invalid(format!(
                "`{}` is not a requirement of workflow `{}`",
                self.requirement, project.workflow_id
            )));
        }
        if workflow
            .state(&project.state)
            .is_some_and(|s| s.is_terminal())
        {
            return Err(StoreError::Invalid(format!(
                "project {} is closed (state `{}`): it takes no more evidence",
                project.id, project.state
            )));
        }
        if expires_at <= now {
            return Err(StoreError::Invalid(format!(
                "the link would expire at {expires_at}, which is not after now ({now})"
            )));
        }
        if expires_at > now + chrono::TimeDelta::days(MAX_LIFETIME_DAYS) {
            return Err(StoreError::Invalid(format!(
                "the link would expire at {expires_at}: links last at most {MAX_LIFETIME_DAYS} days"
            )));
        }
        if !matches!(self.lang.as_str(), "fr" | "en") {
            return Err(StoreError::Invalid(format!(
                "language `{}`: links are mailed in `fr` or `en`",
                self.lang
            )));
        }
        let inserted = links::Entity::insert(links::ActiveModel {
            id: NotSet,
            project_id: Set(project.id),
            role: Set(self.role.clone()),
            requirement: Set(self.requirement.clone()),
            email: Set(self.holder.email.clone()),
            name: Set(self.holder.name.clone()),
            created_by: Set(self.actor.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            document_id: Set(None),
            revoked_at: Set(None),
            revoked_by: Set(None),
        })
        .exec(txn)
        .await?;
        let link_id = inserted.last_insert_id;
        let changes = json!({ "link_id": link_id, "role": self.role, "requirement": self.requirement,
                              "email": self.holder.email, "name": self.holder.name,
                              "expires_at": expires_at });
        let event = NewEvent::other("link_issued", &self.actor, None, changes);
        let (_, seq) = record(txn, &project, event, now, |u| u).await?;
        // The token is not in the row: the mailer signs it again from the link when it writes the mail.
        let context = json!({
            "project_id": project.id, "region_code": project.region_code,
            "workflow_id": project.workflow_id, "workflow_version": project.workflow_version,
            "link_id": link_id, "requirement": self.requirement, "sender": self.actor,
            "expires_at": expires_at,
        })
        .to_string();
        let addressee = Addressee {
            lang: self.lang.clone(),
            recipients: json!([{ "email": self.holder.email, "name": self.holder.name }])
                .to_string(),
        };
        let row = NewRow {
            project_id: Some(project.id),
            event_seq: Some(seq),
            template: INVITATION_TEMPLATE,
            addressee: &addressee,
            context: &context,
        };
        outbox::insert(txn, &[row], now).await?;
        links::Entity::find_by_id(link_id)
            .one(txn)
            .await?
            .ok_or(StoreError::LinkNotFound(link_id))
    }
}

/// An officer withdraws a link that was not used yet.
#[derive(Debug)]
pub struct RevokeLink {
    pub project_id: i64,
    pub link_id: i64,
    pub actor: String,
    pub now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl UnitOfWork for RevokeLink {
    type Output = links::Model;

    fn project_id(&self) -> Option<i64> {
        Some(self.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<links::Model> {
        let now = normalize(self.now);
        let project = find(txn, self.project_id).await?;
        let link = links::Entity::find_by_id(self.link_id)
            .one(txn)
            .await?
            .filter(|l| l.project_id == project.id)
            .ok_or(StoreError::LinkNotFound(self.link_id))?;
        if let Some(refusal) = unusable(&link, now) {
            return Err(refusal);
        }
        let revoked = links::Entity::update_many()
            .col_expr(links::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(
                links::Column::RevokedBy,
                Expr::value(Some(self.actor.clone())),
            )
            .filter(links::Column::Id.eq(link.id))
            .filter(links::Column::UsedAt.is_null())
            .filter(links::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        if revoked.rows_affected != 1 {
            return Err(refusal_now(txn, link.id, now).await);
        }
        let changes = json!({ "link_id": link.id, "email": link.email, "name": link.name });
        let event = NewEvent::other("link_revoked", &self.actor, None, changes);
        record(txn, &project, event, now, |u| u).await?;
        links::Entity::find_by_id(link.id)
            .one(txn)
            .await?
            .ok_or(StoreError::LinkNotFound(link.id))
    }
}

/// Why a link the caller saw usable is not any more (another request used or revoked it meanwhile).
async fn refusal_now(txn: &DatabaseTransaction, id: i64, now: DateTime<Utc>) -> StoreError {
    match links::Entity::find_by_id(id).one(txn).await {
        Ok(Some(link)) => unusable(&link, now).unwrap_or(StoreError::LinkInvalid),
        Ok(None) => StoreError::LinkInvalid,
        Err(e) => e.into(),
    }
}

/// The holder of a link uploads its evidence: the document is recorded with actor `link:<id>` and the link
/// marked used in one transaction; of two uses of one link, exactly one records anything.
#[derive(Debug)]
pub struct UseLink {
    pub link: links::Model,
    /// The document, recorded against the link's project and requirement.
    pub document: RecordDocument,
}

#[async_trait::async_trait]
impl UnitOfWork for UseLink {
    type Output = documents::Model;

    fn project_id(&self) -> Option<i64> {
        Some(self.link.project_id)
    }

    async fn run(&mut self, txn: &DatabaseTransaction) -> StoreResult<documents::Model> {
        let now = normalize(self.document.now);
        // Claim the link first: the row lock makes a concurrent claim wait, then find it used.
        let claimed = links::Entity::update_many()
            .col_expr(links::Column::UsedAt, Expr::value(Some(now)))
            .filter(links::Column::Id.eq(self.link.id))
            .filter(links::Column::UsedAt.is_null())
            .filter(links::Column::RevokedAt.is_null())
            .filter(links::Column::ExpiresAt.gt(now))
            .exec(txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(refusal_now(txn, self.link.id, now).await);
        }
        // The link alone decides where the document goes and who is recorded, whatever the caller built.
        self.document.project_id = self.link.project_id;
        self.document.requirement = self.link.requirement.clone();
        self.document.actor = format!("link:{}", self.link.id);
        let holder = json!({ "link_id": self.link.id, "role": self.link.role,
                             "name": self.link.name, "email": self.link.email });
        let document = record_document(txn, &self.document, Some(holder)).await?;
        links::Entity::update_many()
            .col_expr(links::Column::DocumentId, Expr::value(Some(document.id)))
            .filter(links::Column::Id.eq(self.link.id))
            .exec(txn)
            .await?;
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_as_signed() {
        let key = b"0123456789abcdef0123456789abcdef";
        let expires = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let token = sign(key, 42, expires);
        assert_eq!(verify(key, &token).unwrap(), (42, expires));
        let other_id = token.replacen("42.", "43.", 1);
        let later = token.replace(".1900000000.", ".1900000001.");
        for forged in [other_id.as_str(), later.as_str(), "42", "x.y.z", ""] {
            assert!(
                matches!(verify(key, forged), Err(StoreError::LinkInvalid)),
                "{forged}"
            );
        }
        assert!(matches!(
            verify(b"another key", &token),
            Err(StoreError::LinkInvalid)
        ));
    }

    #[test]
    fn holders_need_one_mailbox_and_a_name() {
        assert!(LinkHolder::parse(" cert@csirt.example ", "CERT Exemple").is_ok());
        for email in [
            "cert",
            "a@b",
            "a b@c.fr",
            "a@c.fr, b@d.fr",
            "<a@c.fr>",
            "@c.fr",
        ] {
            assert!(LinkHolder::parse(email, "X").is_err(), "{email}");
        }
        assert!(LinkHolder::parse("cert@csirt.example", " ").is_err());
        assert!(LinkHolder::parse("cert@csirt.example", "a\nb").is_err());
    }
}
