//! Email templates: one set per language (`templates/{lang}/{name}.{subject.txt,txt,html}`),
//! embedded in the binary, rendered with minijinja. HTML output is auto-escaped;
//! English is the fallback for a language or template that has no set.

use minijinja::Environment;
use serde::Serialize;

/// The languages a full template set ships for; the first is the fallback.
pub const LANGUAGES: &[&str] = &["en", "de"];

/// The template names every language has.
pub const NAMES: &[&str] = &[
    shared::queue::templates::VERIFICATION,
    shared::queue::templates::PASSWORD_RESET,
    shared::queue::templates::INVITATION,
];

macro_rules! embedded {
    ($($lang:literal / $name:literal),* $(,)?) => {
        &[$(
            (concat!($lang, "/", $name, ".subject.txt"), include_str!(concat!("../../templates/", $lang, "/", $name, ".subject.txt"))),
            (concat!($lang, "/", $name, ".txt"), include_str!(concat!("../../templates/", $lang, "/", $name, ".txt"))),
            (concat!($lang, "/", $name, ".html"), include_str!(concat!("../../templates/", $lang, "/", $name, ".html"))),
        )*]
    };
}

const FILES: &[(&str, &str)] = embedded!(
    "en" / "verification",
    "en" / "password-reset",
    "en" / "invitation",
    "de" / "verification",
    "de" / "password-reset",
    "de" / "invitation",
);

/// Errors from rendering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No template of that name in any language.
    #[error("unknown email template {0:?}")]
    UnknownTemplate(String),
    /// A template failed to compile or render (a bug in the template).
    #[error("email template {name} failed")]
    Template {
        /// The template file.
        name: String,
        /// The engine's error.
        #[source]
        source: minijinja::Error,
    },
}

/// A rendered email.
#[derive(Clone)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// The language actually used (after fallback).
    pub language: &'static str,
}

// Bodies hold one-time links: never print them.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered").field("language", &self.language).finish_non_exhaustive()
    }
}

/// The compiled template sets.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every embedded template.
    ///
    /// # Errors
    /// [`Error::Template`] when one does not compile (caught by the unit tests).
    pub fn new() -> Result<Templates, Error> {
        let mut env = Environment::new();
        // `.html` templates are HTML-escaped by default; keep `.txt` raw.
        env.add_template("base.html", include_str!("../../templates/base.html"))
            .map_err(|source| Error::Template { name: "base.html".into(), source })?;
        for (name, source_text) in FILES {
            env.add_template(name, source_text).map_err(|source| Error::Template { name: (*name).into(), source })?;
        }
        Ok(Templates { env })
    }

    /// Renders `template` in `language` (a tag such as `de` or `pt-BR`; its primary
    /// subtag picks the set, English if there is none) with `context`.
    ///
    /// # Errors
    /// [`Error::UnknownTemplate`] or [`Error::Template`].
    pub fn render<C: Serialize>(&self, template: &str, language: &str, context: &C) -> Result<Rendered, Error> {
        if !NAMES.contains(&template) {
            return Err(Error::UnknownTemplate(template.to_owned()));
        }
        let primary = shared::domain::Language::parse(language).map(|l| l.primary().to_owned()).unwrap_or_default();
        let lang = LANGUAGES.iter().copied().find(|l| *l == primary).unwrap_or(LANGUAGES[0]);
        let ctx = minijinja::Value::from_serialize(context);
        let lang_value = minijinja::Value::from(lang);
        let ctx = minijinja::context! { lang => lang_value, ..ctx };
        let render = |suffix: &str| -> Result<String, Error> {
            let name = format!("{lang}/{template}.{suffix}");
            let tmpl = self.env.get_template(&name).map_err(|source| Error::Template { name: name.clone(), source })?;
            tmpl.render(&ctx).map_err(|source| Error::Template { name, source })
        };
        Ok(Rendered {
            subject: render("subject.txt")?.trim().to_owned(),
            text: render("txt")?,
            html: render("html")?,
            language: lang,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_in_every_language() {
        let t = Templates::new().unwrap();
        let ctx = serde_json::json!({"link": "https://app.test/x?token=abc", "appName": "Acme", "appUrl": "https://app.test",
            "name": "Ada", "tenantName": "Widgets", "inviterName": "Bob", "role": "admin"});
        for lang in LANGUAGES {
            for name in NAMES {
                let r = t.render(name, lang, &ctx).unwrap();
                assert_eq!(r.language, *lang);
                assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{lang}/{name}: {:?}", r.subject);
                assert!(r.text.contains("https://app.test/x?token=abc"), "{lang}/{name}");
                // minijinja escapes `/` in HTML as `&#x2f;`, which every client decodes.
                assert!(r.html.contains("app.test&#x2f;x?token=abc"), "{lang}/{name}: {}", r.html);
                assert!(r.html.contains(&format!("lang=\"{lang}\"")), "{lang}/{name}");
            }
        }
    }

    #[test]
    fn unknown_language_falls_back_to_english_and_html_is_escaped() {
        let t = Templates::new().unwrap();
        let ctx = serde_json::json!({"link": "https://a.test/l", "appName": "A", "name": "<script>x</script>"});
        let r = t.render("verification", "pt-BR", &ctx).unwrap();
        assert_eq!(r.language, "en");
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("<script>"), "text parts are not HTML");
        assert_eq!(t.render("verification", "de-AT", &ctx).unwrap().language, "de");
        assert!(matches!(t.render("nope", "en", &ctx), Err(Error::UnknownTemplate(_))));
    }
}
