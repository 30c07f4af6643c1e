//! The pages' own assets, compiled into the binary and served by the service (no CDN: deployments may be
//! offline). Each URL carries a hash of the content, so browsers may keep it for a year and still get the
//! new one after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

const STYLESHEET: &str = include_str!("../../assets/site.css");
const ICON: &str = include_str!("../../assets/icon.svg");

struct Asset {
    /// `site.<hash>.css`
    name: String,
    body: &'static str,
    media_type: &'static str,
}

fn asset(stem: &str, extension: &str, body: &'static str, media_type: &'static str) -> Asset {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    Asset {
        name: format!("{stem}.{}.{extension}", &hash[..12]),
        body,
        media_type,
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("site", "css", STYLESHEET, "text/css; charset=utf-8"),
        asset("icon", "svg", ICON, "image/svg+xml"),
    ]
});

pub fn stylesheet_url() -> String {
    format!("/assets/{}", ASSETS[0].name)
}

pub fn icon_url() -> String {
    format!("/assets/{}", ASSETS[1].name)
}

/// An asset by its hashed name; an old hash is a 404, never stale content under a new name.
pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == file)
        .ok_or_else(|| ApiError::NotFound("no such asset".into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.media_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        let url = stylesheet_url();
        assert!(
            url.starts_with("/assets/site.") && url.ends_with(".css"),
            "{url}"
        );
        let hash = hex::encode(Sha256::digest(STYLESHEET.as_bytes()));
        assert!(url.contains(&hash[..12]));
        assert_ne!(stylesheet_url(), icon_url());
    }
}
