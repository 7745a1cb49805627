//! The media types rbuild writes and recognizes, OCI's and Docker's schema 2.

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// A Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A layer media type in the manifest's family (OCI when `oci`, else
/// Docker schema 2), keeping its compression; other types are kept as
/// they are.
pub fn layer_in_family(media_type: &str, oci: bool) -> String {
    let suffix = if media_type.ends_with("gzip") {
        Some("gzip")
    } else if media_type.ends_with("zstd") {
        Some("zstd")
    } else if media_type.ends_with("tar") {
        None
    } else {
        return media_type.to_string();
    };
    match (oci, suffix) {
        (true, Some(c)) => format!("{OCI_LAYER_TAR}+{c}"),
        (true, None) => OCI_LAYER_TAR.to_string(),
        (false, Some(c)) => format!("application/vnd.docker.image.rootfs.diff.tar.{c}"),
        (false, None) => String::from("application/vnd.docker.image.rootfs.diff.tar"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_change_family_and_keep_compression() {
        assert_eq!(
            layer_in_family("application/vnd.oci.image.layer.v1.tar+gzip", false),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(
            layer_in_family("application/vnd.docker.image.rootfs.diff.tar", true),
            OCI_LAYER_TAR
        );
        assert_eq!(
            layer_in_family("application/vnd.docker.image.rootfs.diff.tar.zstd", true),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(layer_in_family("text/plain", true), "text/plain");
    }
}
