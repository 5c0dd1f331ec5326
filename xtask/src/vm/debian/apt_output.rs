//! What apt's commands print, read: dependencies, the image package among them and its
//! companions, versions.

/// The package names in `apt-cache depends` output's Depends lines (alternatives included,
/// virtual packages `<...>` left out).
pub fn depends_of(apt_cache_depends: &str) -> Vec<String> {
    apt_cache_depends
        .lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(str::trim)
        .filter(|d| !d.starts_with('<') && !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// The image package among a metapackage's dependencies.
pub fn image_package(depends: &[String]) -> Option<String> {
    depends
        .iter()
        .find(|d| d.starts_with("linux-image-"))
        .cloned()
}

/// The packages of the same kernel an image package depends on: from Debian 14,
/// `linux-binary-REL`, `linux-base-REL`, `linux-modules-REL` for `linux-image-REL` (none up to
/// Debian 13, whose image package depends only on tools such as kmod and linux-base).
pub fn companions(image: &str, depends: &[String]) -> Vec<String> {
    let Some(rel) = image.strip_prefix("linux-image-") else {
        return Vec::new();
    };
    let suffix = format!("-{rel}");
    let mut c: Vec<String> = depends
        .iter()
        .filter(|d| d.starts_with("linux-") && d.ends_with(&suffix) && *d != image)
        .cloned()
        .collect();
    c.sort();
    c.dedup();
    c
}

/// The candidate version in `apt-cache show --no-all-versions` output.
pub fn version_of(apt_cache_show: &str) -> Option<String> {
    apt_cache_show
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
}
