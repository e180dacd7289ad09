//! What the core adds to the neutral spec (`hafen_api::spec`): the labels every hafen object
//! carries and the spec's stable hash, which decides whether a running service is current.

pub use hafen_api::spec::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const LABEL_MANAGED: &str = "org.hafen.managed";
pub const LABEL_STACK: &str = "org.hafen.stack";
pub const LABEL_SERVICE: &str = "org.hafen.service";
pub const LABEL_VOLUME: &str = "org.hafen.volume";
pub const LABEL_SPEC_HASH: &str = "org.hafen.spec-hash";
pub const LABEL_RECIPE: &str = "org.hafen.recipe";
pub const LABEL_RECIPE_HASH: &str = "org.hafen.recipe-hash";


/// Stable hash of the spec (serde_json of a struct with ordered maps).
pub fn spec_hash(spec: &ServiceSpec) -> String {
    let json = serde_json::to_vec(spec).expect("spec serialises");
    hex::encode(&Sha256::digest(&json)[..12])
}

/// The labels of a service's container.
pub fn spec_labels(spec: &ServiceSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_STACK.to_string(), spec.stack.clone()),
        (LABEL_SERVICE.to_string(), spec.service.clone()),
        (LABEL_SPEC_HASH.to_string(), spec_hash(spec)),
    ])
}
