//! The 18 French regions (INSEE COG codes), seeded idempotently at start-up.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, Set};

use crate::entities::regions;
use crate::error::StoreResult;

/// (code, name, single territorial collectivity whose assembly plays the council's part)
pub const REGIONS: [(&str, &str, bool); 18] = [
    ("01", "Guadeloupe", false),
    ("02", "Martinique", true),
    ("03", "Guyane", true),
    ("04", "La Réunion", false),
    ("06", "Mayotte", true),
    ("11", "Île-de-France", false),
    ("24", "Centre-Val de Loire", false),
    ("27", "Bourgogne-Franche-Comté", false),
    ("28", "Normandie", false),
    ("32", "Hauts-de-France", false),
    ("44", "Grand Est", false),
    ("52", "Pays de la Loire", false),
    ("53", "Bretagne", false),
    ("75", "Nouvelle-Aquitaine", false),
    ("76", "Occitanie", false),
    ("84", "Auvergne-Rhône-Alpes", false),
    ("93", "Provence-Alpes-Côte d'Azur", false),
    ("94", "Corse", true),
];

pub async fn seed(db: &impl ConnectionTrait) -> StoreResult<()> {
    let rows = REGIONS
        .iter()
        .map(|(code, name, single)| regions::ActiveModel {
            code: Set((*code).to_owned()),
            name: Set((*name).to_owned()),
            single_collectivity: Set(*single),
        });
    regions::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(regions::Column::Code)
                .update_columns([regions::Column::Name, regions::Column::SingleCollectivity])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

pub async fn list(db: &impl ConnectionTrait) -> StoreResult<Vec<regions::Model>> {
    use sea_orm::QueryOrder;
    Ok(regions::Entity::find()
        .order_by_asc(regions::Column::Code)
        .all(db)
        .await?)
}
