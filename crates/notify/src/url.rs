use std::fmt;

use serde::Serialize;

/// The address the service is published at, from configuration. Links in mails are built from it alone,
/// never from the host of a request, which a client controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PublicUrl(String);

/// The address of a signed link, only obtainable from [`PublicUrl::link_url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LinkUrl(String);

/// A link to one project's page, only obtainable from [`PublicUrl::project_url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProjectUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{url}` is not a usable public URL: {reason}; give the address users open, such as `https://incubateur.example.gouv.fr`"
)]
pub struct PublicUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl PublicUrl {
    pub fn parse(url: &str) -> Result<PublicUrl, PublicUrlError> {
        let fail = |reason| PublicUrlError {
            url: url.to_owned(),
            reason,
        };
        let url = url.trim_end_matches('/');
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| fail("it must start with https:// or http://"))?;
        if host.is_empty() {
            return Err(fail("it has no host"));
        }
        // Links are pasted into HTML attributes and plain text: nothing that could end or extend them.
        if url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>'))
        {
            return Err(fail("it contains spaces, quotes or angle brackets"));
        }
        if url.contains(['?', '#']) {
            return Err(fail("it has a query or a fragment"));
        }
        Ok(PublicUrl(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The page of a project, as the web service routes it (`/projects/{id}`).
    pub fn project_url(&self, project_id: impl fmt::Display) -> ProjectUrl {
        ProjectUrl(format!("{}/projects/{project_id}", self.0))
    }

    /// The page a link holder opens (`/links/{token}`); a token holds only digits, dots and hex digits.
    pub fn link_url(&self, token: &str) -> LinkUrl {
        LinkUrl(format!("{}/links/{token}", self.0))
    }
}

impl ProjectUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ProjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_links_hang_off_the_public_url() {
        let base = PublicUrl::parse("https://incubateur.example.gouv.fr/").unwrap();
        assert_eq!(base.as_str(), "https://incubateur.example.gouv.fr");
        assert_eq!(
            base.project_url(42).as_str(),
            "https://incubateur.example.gouv.fr/projects/42"
        );
        let under_a_path = PublicUrl::parse("https://example.gouv.fr/incubateur").unwrap();
        assert_eq!(
            under_a_path.project_url("7").as_str(),
            "https://example.gouv.fr/incubateur/projects/7"
        );
    }

    #[test]
    fn unusable_urls_are_refused() {
        for url in [
            "incubateur.example.gouv.fr",
            "javascript:alert(1)",
            "https://",
            "https://example.org/a b",
            "https://example.org/\r\nBcc: evil@example.org",
            "https://example.org/\"onmouseover=\"x",
            "https://example.org/?next=evil",
        ] {
            assert!(PublicUrl::parse(url).is_err(), "{url} was accepted");
        }
    }
}
