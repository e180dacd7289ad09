//! rust-i18n compiles `locales/*.yml` into this crate at build time; Cargo must rebuild the crate
//! when a text changes, which it does not know by itself.
fn main() {
    println!("cargo:rerun-if-changed=../../locales");
}
