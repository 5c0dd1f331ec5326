use super::*;

const META_DEPENDS: &str =
    "linux-image-cloud-amd64\n  Depends: linux-image-7.2.13+deb14-cloud-amd64\n";
const SID_IMAGE_DEPENDS: &str = "linux-image-7.2.13+deb14-cloud-amd64
  Depends: linux-binary-7.2.13+deb14-cloud-amd64
  Depends: linux-base-7.2.13+deb14-cloud-amd64
  Depends: linux-modules-7.2.13+deb14-cloud-amd64
 |Depends: initramfs-tools
  Depends: <linux-initramfs-tool>
dracut
initramfs-tools
  Depends: kmod
  Depends: linux-base
";
const BOOKWORM_IMAGE_DEPENDS: &str = "linux-image-6.1.0-44-cloud-amd64
  Depends: kmod
  Depends: linux-base
 |Depends: initramfs-tools
  Depends: <linux-initramfs-tool>
initramfs-tools
";

#[test]
fn metapackage_resolves_to_its_image() {
    let d = depends_of(META_DEPENDS);
    assert_eq!(
        image_package(&d).as_deref(),
        Some("linux-image-7.2.13+deb14-cloud-amd64")
    );
    assert_eq!(image_package(&depends_of("x\n  Depends: kmod\n")), None);
}

#[test]
fn split_layout_companions_come_from_the_image_depends() {
    let image = "linux-image-7.2.13+deb14-cloud-amd64";
    let d = depends_of(SID_IMAGE_DEPENDS);
    assert!(d.contains(&"initramfs-tools".to_string()));
    assert!(!d.iter().any(|p| p.starts_with('<')));
    assert_eq!(
        companions(image, &d),
        [
            "linux-base-7.2.13+deb14-cloud-amd64",
            "linux-binary-7.2.13+deb14-cloud-amd64",
            "linux-modules-7.2.13+deb14-cloud-amd64",
        ]
    );
    // Up to Debian 13 the image package is the whole kernel (linux-base is a tool).
    assert!(companions(
        "linux-image-6.1.0-44-cloud-amd64",
        &depends_of(BOOKWORM_IMAGE_DEPENDS)
    )
    .is_empty());
}

#[test]
fn versions() {
    assert_eq!(
        version_of("Package: linux-image-x\nVersion: 6.1.158-1\nArchitecture: amd64\n").as_deref(),
        Some("6.1.158-1")
    );
    assert_eq!(version_of("Package: x\n"), None);
}

fn tree(files: &[&str], name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("xtask-vm-layout-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    for f in files {
        let p = root.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if f.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
        } else {
            fs::write(&p, "x").unwrap();
        }
    }
    root
}

#[test]
fn layout_up_to_debian_13() {
    let root = tree(
        &[
            "boot/vmlinuz-6.1.0-44-cloud-amd64",
            "boot/System.map-6.1.0-44-cloud-amd64",
            "lib/modules/6.1.0-44-cloud-amd64/kernel/drivers/net/veth.ko",
        ],
        "classic",
    );
    let l = layout(&root).unwrap();
    assert_eq!(l.release, "6.1.0-44-cloud-amd64");
    assert_eq!(l.vmlinuz, root.join("boot/vmlinuz-6.1.0-44-cloud-amd64"));
    assert_eq!(l.modules_dir, root.join("lib/modules/6.1.0-44-cloud-amd64"));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn layout_from_debian_14() {
    let rel = "7.2.13+deb14-cloud-amd64";
    let root = tree(
        &[
            &format!("usr/lib/modules/{rel}/vmlinuz"),
            &format!("usr/lib/modules/{rel}/modules.builtin"),
            &format!("usr/lib/modules/{rel}/kernel/drivers/net/veth.ko.xz"),
        ],
        "split",
    );
    let l = layout(&root).unwrap();
    assert_eq!(l.release, rel);
    assert_eq!(
        l.vmlinuz,
        root.join(format!("usr/lib/modules/{rel}/vmlinuz"))
    );
    assert_eq!(l.modules_dir, root.join(format!("usr/lib/modules/{rel}")));
    // With the lib/modules link made for depmod, the release is still found once.
    fs::create_dir_all(root.join("lib")).unwrap();
    std::os::unix::fs::symlink("../usr/lib/modules", root.join("lib/modules")).unwrap();
    assert_eq!(layout(&root).unwrap(), l);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn layout_refuses_what_it_cannot_boot() {
    let root = tree(&["lib/modules/6.1.0-1-cloud-amd64/kernel/"], "novmlinuz");
    assert!(layout(&root).is_err());
    let root2 = tree(
        &[
            "boot/vmlinuz-a",
            "lib/modules/a/kernel/",
            "lib/modules/b/kernel/",
        ],
        "two",
    );
    assert!(layout(&root2).is_err());
    fs::remove_dir_all(&root).unwrap();
    fs::remove_dir_all(&root2).unwrap();
}

#[test]
fn series_and_labels() {
    let s = spec("6.1").unwrap();
    assert!(in_series(&s, "6.1.0-44-cloud-amd64"));
    assert!(!in_series(&s, "6.12.57+deb12-cloud-amd64"));
    assert!(in_series(
        &spec("6.12").unwrap(),
        "6.12.57+deb12-cloud-amd64"
    ));
    assert!(in_series(&spec("sid").unwrap(), "7.2.13+deb14-cloud-amd64"));
    assert_eq!(spec("bullseye").unwrap().label, "5.10");
    assert_eq!(spec("unstable").unwrap().label, "sid");
    assert!(spec("4.19").is_err());
    // 6.1 and 6.12 share one apt configuration; every suite has its own folder.
    assert_eq!(spec("6.1").unwrap().suite, spec("6.12").unwrap().suite);
    assert_ne!(
        spec("sid").unwrap().suite.name,
        spec("5.10").unwrap().suite.name
    );
    let d: Vec<&str> = default_matrix().iter().map(|k| k.label).collect();
    assert!(d.contains(&"6.1") && d.contains(&"6.12"));
    assert!(!d.contains(&"5.10"));
}
