//! `meshspec k3s standin-image`: a local image that answers at K3s'
//! interface as testcontainers-modules' K3s module uses it (the API on 6443,
//! /etc/rancher/k3s/k3s.yaml, the stderr line it waits for), running one
//! cluster of the twin (`meshspec k3s serve`). Built through testcontainers
//! `FROM scratch` with this very binary and the shared libraries it loads, so
//! nothing is pulled: the machines here reach no registry.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use testcontainers::bollard::Docker;
use testcontainers::runners::AsyncBuilder;
use testcontainers::GenericBuildableImage;

pub const IMAGE_NAME: &str = "meshspec-k3s-standin";

/// The stand-in runs no containerd and no iptables: it needs no privileges
/// (`meshspec.io/privileged=false`), where engines may refuse privileged containers.
/// `server` comes from the K3s module's command (`server --snapshotter=native`),
/// which Docker appends to the entrypoint as it does for rancher/k3s's `/bin/k3s`.
const DOCKERFILE: &str = "FROM scratch
COPY rootfs/ /
LABEL meshspec.io/managed-by=meshspec
LABEL meshspec.io/privileged=false
ENV PATH=/bin
ENTRYPOINT [\"/bin/meshspec\", \"k3s\", \"serve\"]
CMD [\"server\"]
";

/// A built image: `name:tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl ImageRef {
    /// `NAME[:TAG]` as Docker reads it: a colon after the last `/` starts the tag
    /// (`registry:5000/k3s` has none); no tag means `latest`.
    pub fn parse(text: &str) -> Result<ImageRef> {
        let text = text.trim();
        if text.is_empty() || text.contains(char::is_whitespace) || text.contains('@') {
            bail!("{text:?} is not an image reference (NAME[:TAG], e.g. rancher/k3s:v1.28.8-k3s1); digests are not supported");
        }
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match text[slash..].rfind(':') {
            Some(i) => (&text[..slash + i], &text[slash + i + 1..]),
            None => (text, "latest"),
        };
        if name.is_empty() || tag.is_empty() {
            bail!("{text:?} is not an image reference (NAME[:TAG])");
        }
        Ok(ImageRef { name: name.to_string(), tag: tag.to_string() })
    }
}

/// The tag of an image of `binary`: its size and modification time, hashed
/// (hashing the content of a debug binary of several hundred MB takes seconds
/// unoptimised; a rebuilt binary has a new mtime).
fn tag_of(binary: &Path) -> Result<String> {
    let meta = std::fs::metadata(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(meta.len().to_le_bytes());
    h.update(mtime.as_nanos().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    Ok(hex::encode(&h.finalize()[..6]))
}

/// The shared libraries `ldd` says `binary` loads, with the dynamic loader.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd to list the libraries the image needs")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        bail!("ldd {} failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    parse_ldd(&text)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("=> not found") {
            bail!("a library the binary needs is missing: {line}");
        }
        // `name => /path (0x...)`, `/path (0x...)`, or the vdso without a path.
        let path = line.split_once("=>").map_or(line, |(_, rest)| rest.trim());
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Builds (unless an image of this binary exists already) and names the stand-in image.
pub async fn build(docker: &Docker, binary: &Path) -> Result<ImageRef> {
    let image = ImageRef { name: IMAGE_NAME.to_string(), tag: tag_of(binary)? };
    if docker.inspect_image(&image.to_string()).await.is_ok() {
        remove_older(docker, &image).await;
        return Ok(image);
    }
    let mut build = GenericBuildableImage::new(&image.name, &image.tag)
        .with_dockerfile_string(DOCKERFILE)
        .with_file(binary, "rootfs/bin/meshspec")
        // Mount points and scratch space the binary expects to exist.
        .with_data(Vec::new(), "rootfs/tmp/.keep")
        .with_data(Vec::new(), "rootfs/etc/rancher/k3s/.keep");
    for lib in shared_libraries(binary)? {
        let target = format!("rootfs{}", lib.display());
        build = build.with_file(lib, target);
    }
    let _built =
        build.build_image().await.with_context(|| format!("cannot build the stand-in image {image} (FROM scratch)"))?;
    remove_older(docker, &image).await;
    Ok(image)
}

/// Removes the stand-in images of earlier binaries (each rebuild of meshspec
/// makes a new one of about 180 MB); one a container still uses stays.
async fn remove_older(docker: &Docker, current: &ImageRef) {
    use testcontainers::bollard::query_parameters::{ListImagesOptions, RemoveImageOptions};
    let filters = std::collections::HashMap::from([("reference".to_string(), vec![IMAGE_NAME.to_string()])]);
    let Ok(images) = docker.list_images(Some(ListImagesOptions { filters: Some(filters), ..Default::default() })).await
    else {
        return;
    };
    let keep = current.to_string();
    for tag in images.iter().flat_map(|i| i.repo_tags.iter()).filter(|t| **t != keep) {
        // Not forced: an image in use is refused by the engine and stays.
        let _ = docker.remove_image(tag, None::<RemoveImageOptions>, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_the_tag_colon_only() {
        let r = ImageRef::parse("rancher/k3s:v1.28.8-k3s1").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("rancher/k3s", "v1.28.8-k3s1"));
        let r = ImageRef::parse("registry.local:5000/k3s").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("registry.local:5000/k3s", "latest"));
        let r = ImageRef::parse("registry.local:5000/k3s:v1").unwrap();
        assert_eq!((r.name.as_str(), r.tag.as_str()), ("registry.local:5000/k3s", "v1"));
        for bad in ["", "a b", "k3s:", ":tag", "k3s@sha256:00"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ldd_output_gives_the_paths_and_refuses_missing_libraries() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(out).unwrap();
        assert_eq!(
            libs,
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err().to_string().contains("libfoo.so.1"));
    }

    #[test]
    fn this_binarys_libraries_are_found() {
        let me = std::env::current_exe().unwrap();
        let libs = shared_libraries(&me).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
    }
}
