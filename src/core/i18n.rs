//! Language choice for everything hafen says to people: German first, English by setting.
//! `HAFEN_LANG` wins; else `LC_ALL`, `LC_MESSAGES`, `LANG`; German when none names a language
//! hafen has. Texts live in `locales/app.yml` (rust-i18n, compiled in).

pub fn choose() -> &'static str {
    for var in ["HAFEN_LANG", "LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            let v = v.to_ascii_lowercase();
            if v.starts_with("en") {
                return "en";
            }
            if v.starts_with("de") {
                return "de";
            }
            if var == "HAFEN_LANG" && !v.is_empty() {
                break;
            }
        }
    }
    "de"
}

pub fn init() {
    rust_i18n::set_locale(choose());
}
