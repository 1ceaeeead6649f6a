//! Rendering the portal's pages: minijinja templates embedded in the binary
//! (`gateway/templates/portal/`), strings per language (`i18n/{lang}.toml`,
//! English fallback), the product name, logo and colour from settings.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;
use serde_json::{Map, Value};
use shared::config::Settings;

use crate::web_session::cookies;
use crate::web_session::site::SitePolicy;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/portal/base.html")),
    ("login.html", include_str!("../../templates/portal/login.html")),
    ("register.html", include_str!("../../templates/portal/register.html")),
    ("forgot.html", include_str!("../../templates/portal/forgot.html")),
    ("reset.html", include_str!("../../templates/portal/reset.html")),
    ("verified.html", include_str!("../../templates/portal/verified.html")),
    ("invitation.html", include_str!("../../templates/portal/invitation.html")),
    ("tenants.html", include_str!("../../templates/portal/tenants.html")),
    ("api_keys.html", include_str!("../../templates/portal/api_keys.html")),
    ("logout.html", include_str!("../../templates/portal/logout.html")),
    ("message.html", include_str!("../../templates/portal/message.html")),
];

/// The languages pages exist in; the first is the fallback.
pub const LANGUAGES: &[&str] = &["en", "de"];

const STRINGS: &[(&str, &str)] = &[
    ("en", include_str!("../../templates/portal/i18n/en.toml")),
    ("de", include_str!("../../templates/portal/i18n/de.toml")),
];

/// Why the pages could not be prepared at start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template does not parse.
    #[error("portal template: {0}")]
    Template(#[from] minijinja::Error),
    /// A strings file does not parse.
    #[error("portal strings for {lang}: {source}")]
    Strings {
        /// The language.
        lang: &'static str,
        /// The parse error.
        source: toml::de::Error,
    },
    /// The Content-Security-Policy built from the site's domains is not a header
    /// value (the domains are filtered to host characters, so a defect).
    #[error("portal Content-Security-Policy is not a valid header value")]
    Csp,
}

#[derive(Debug, Clone, Serialize)]
struct Brand {
    name: String,
    logo: String,
    color: String,
}

/// The compiled templates, strings and branding.
pub struct Pages {
    env: Environment<'static>,
    strings: BTreeMap<&'static str, Map<String, Value>>,
    brand: Brand,
    /// The `Content-Security-Policy` of every page.
    csp: HeaderValue,
}

impl Pages {
    /// Compiles every template and reads every strings file.
    ///
    /// # Errors
    /// A template or strings file that does not parse (a build defect).
    pub fn new(settings: &Settings) -> Result<Pages, Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        let mut strings = BTreeMap::new();
        for (lang, source) in STRINGS {
            let table: Map<String, Value> = toml::from_str(source).map_err(|source| Error::Strings { lang, source })?;
            strings.insert(*lang, table);
        }
        let brand = Brand {
            name: settings.product_name().to_owned(),
            logo: settings.portal.logo_url.as_ref().map_or_else(String::new, |u| u.as_str().to_owned()),
            color: settings.portal.primary_color.as_str().to_owned(),
        };
        let site = SitePolicy::new(&settings.gateway);
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'{}",
            site.form_action_sources()
        );
        let csp = HeaderValue::from_str(&csp).map_err(|_| Error::Csp)?;
        Ok(Pages { env, strings, brand, csp })
    }

    /// Renders `template` in `lang` with `context` (a JSON object; `t`, `brand`
    /// and `lang` are added) into an HTML response with `status`.
    pub fn page(&self, status: StatusCode, template: &str, lang: &str, context: Map<String, Value>) -> Response {
        match self.render(template, lang, context) {
            Ok(body) => html(status, body, &self.csp),
            Err(e) => {
                tracing::error!(error = %e, template, "portal page did not render");
                html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><p>Something went wrong.</p>".into(),
                    &self.csp,
                )
            }
        }
    }

    fn render(&self, template: &str, lang: &str, mut context: Map<String, Value>) -> Result<String, minijinja::Error> {
        let en = self.strings.get("en").cloned().unwrap_or_default();
        let mut t = en;
        if let Some(own) = self.strings.get(lang) {
            t.extend(own.clone());
        }
        context.insert("t".into(), Value::Object(t));
        context.insert("lang".into(), Value::from(lang));
        context.insert("brand".into(), serde_json::to_value(&self.brand).unwrap_or(Value::Null));
        self.env.get_template(template)?.render(Value::Object(context))
    }

    /// One string in `lang` (English when missing).
    pub fn text(&self, lang: &str, key: &str) -> String {
        [lang, "en"]
            .iter()
            .find_map(|l| self.strings.get(l).and_then(|t| t.get(key)).and_then(Value::as_str))
            .unwrap_or(key)
            .to_owned()
    }

    /// A page with a title, a sentence and one link (notices and errors).
    pub fn message(
        &self,
        status: StatusCode,
        lang: &str,
        title: &str,
        text: &str,
        link: &str,
        link_text: &str,
    ) -> Response {
        let mut ctx = Map::new();
        ctx.insert("title".into(), Value::from(self.text(lang, title)));
        ctx.insert("text".into(), Value::from(self.text(lang, text)));
        ctx.insert("link".into(), Value::from(link));
        ctx.insert("link_text".into(), Value::from(self.text(lang, link_text)));
        self.page(status, "message.html", lang, ctx)
    }
}

/// An HTML response that is never cached, framed or sniffed, may load nothing
/// but its own inline style and images, and may submit forms only to this site.
fn html(status: StatusCode, body: String, csp: &HeaderValue) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    response
}

/// The page language: `?lang=`, else the language cookie, else the best
/// `Accept-Language` match, else English.
pub fn language(query: Option<&str>, headers: &HeaderMap) -> &'static str {
    let known = |tag: &str| {
        let primary = tag.split(['-', '_']).next().unwrap_or("").trim().to_ascii_lowercase();
        LANGUAGES.iter().copied().find(|l| *l == primary)
    };
    if let Some(lang) = query.and_then(known) {
        return lang;
    }
    if let Some(lang) = cookies::read(headers, cookies::LANG_COOKIE).and_then(known) {
        return lang;
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut best: Option<(&'static str, f32)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("");
        let q =
            parts.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        if let Some(lang) = known(tag) {
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
    }
    best.map_or(LANGUAGES[0], |(lang, _)| lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_english_string() {
        let pages = Pages::new(&Settings::default()).unwrap();
        let en = &pages.strings["en"];
        for lang in LANGUAGES {
            let own = &pages.strings[lang];
            for key in en.keys() {
                assert!(own.contains_key(key), "{lang} lacks {key}");
            }
        }
    }

    #[test]
    fn language_comes_from_query_cookie_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(language(None, &h), "en");
        h.insert(header::ACCEPT_LANGUAGE, "fr-CH, de;q=0.8, en;q=0.5".parse().unwrap());
        assert_eq!(language(None, &h), "de");
        h.insert(header::COOKIE, "tg_lang=en".parse().unwrap());
        assert_eq!(language(None, &h), "en");
        assert_eq!(language(Some("de"), &h), "de");
        assert_eq!(language(Some("xx"), &HeaderMap::new()), "en");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let pages = Pages::new(&Settings::default()).unwrap();
        let mut ctx = Map::new();
        ctx.insert("email".into(), Value::from("\"><script>x</script>"));
        ctx.insert("csrf".into(), Value::from("c"));
        ctx.insert("return_to".into(), Value::from("/"));
        let body = pages.render("login.html", "de", ctx).unwrap();
        assert!(!body.contains("<script>x"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(body.contains(r#"lang="de""#) && body.contains("Anmelden"));
        assert!(body.contains(r#"name="password" type="password" autocomplete="current-password""#));
        for template in TEMPLATES.iter().map(|(name, _)| *name).filter(|n| *n != "base.html") {
            pages.render(template, "en", Map::new()).unwrap();
        }
    }
}
