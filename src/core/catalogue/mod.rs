//! Stack definitions: the v1 format (`model`), its validation with all errors at once (`load`,
//! `decode`, `yamlpos`), and pure rendering into neutral service specs (`render`). Works on text
//! it is given; reading the stacks directory is the daemon's (`hafen_daemon::catalogue`).

pub mod decode;
pub mod load;
pub mod model;
pub mod render;
pub mod yamlpos;

pub use decode::Issue;
pub use model::StackDef;
