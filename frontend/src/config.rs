//! The image config a stage carries and the history entries of the image:
//! the image model's types (`rbuild-image`), named here for the frontend's
//! callers.

pub use rbuild_image::config::{EmptyObject, Healthcheck, History, ImageConfig};
