//! Hot reload with Kubernetes ConfigMap volumes. The kubelet updates a ConfigMap volume as
//! its AtomicWriter does: the new files go into a new hidden directory, a `..data_tmp`
//! symlink to it is renamed over `..data`, and the old directory is deleted; what the pod
//! sees are symlinks through `..data`. Both mounts are tested: the ConfigMap at
//! `clusters_dir` (items `<id>/config.yaml`), and `clusters_dir` itself reached through
//! `..data` (the ConfigMap one level up, items `clusters/<id>/config.yaml`), whose watched
//! directory is replaced by the swap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::gateway::{Options, tcp_cluster};
use common::{RedisServer, Throome, backend_port_via, eventually, free_port};

/// A ConfigMap volume at `root`: `files` (relative paths) written as version `version`.
struct Volume {
    root: PathBuf,
    version: Option<PathBuf>,
}

impl Volume {
    fn new(root: &Path) -> Volume {
        std::fs::create_dir_all(root).unwrap();
        Volume {
            root: root.to_path_buf(),
            version: None,
        }
    }

    /// What the kubelet does on an update: new dir, `..data_tmp` renamed over `..data`,
    /// user-visible symlinks for new top-level entries, old dir removed.
    fn update(&mut self, n: u32, files: &[(&str, String)]) {
        let dir = self
            .root
            .join(format!("..2026_12_07_00_00_0{n}.00000000{n}"));
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        symlink(dir.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        for (path, _) in files {
            let top = path.split('/').next().unwrap();
            let visible = self.root.join(top);
            if std::fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new("..data").join(top), &visible).unwrap();
            }
        }
        if let Some(old) = self.version.replace(dir) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

fn swaps_reload(prefix: &str, clusters_dir: impl Fn(&Path) -> PathBuf) {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let listen = free_port();
    let second = free_port();
    let state = tempfile::tempdir().unwrap();
    let mut volume = Volume::new(&state.path().join("volume"));
    let shop = |port: u16| tcp_cluster("shop", "kv", listen, &[(port, "primary", 1)], "");
    volume.update(1, &[(&format!("{prefix}shop/config.yaml"), shop(a.port))]);
    let dir = clusters_dir(&volume.root);
    let opts = Options {
        clusters_dir: Some(dir),
        ..Options::default()
    };
    let gw = Throome::start_with(&[], opts);
    assert_eq!(backend_port_via(listen), Ok(a.port), "{}", gw.log());

    // The backend changes: the swap reloads it.
    volume.update(2, &[(&format!("{prefix}shop/config.yaml"), shop(b.port))]);
    assert!(
        eventually(Duration::from_secs(10), || backend_port_via(listen)
            == Ok(b.port)),
        "the swap did not reload; log:\n{}",
        gw.log()
    );
    // And again, after the watched directory (in the second layout) was replaced once: a
    // cluster is added.
    let blog = tcp_cluster("blog", "kv", second, &[(a.port, "primary", 1)], "");
    volume.update(
        3,
        &[
            (&format!("{prefix}shop/config.yaml"), shop(b.port)),
            (&format!("{prefix}blog/config.yaml"), blog),
        ],
    );
    assert!(
        eventually(Duration::from_secs(10), || backend_port_via(second)
            == Ok(a.port)),
        "the second swap did not reload; log:\n{}",
        gw.log()
    );
    let (_, clusters) = gw.get("/api/v1/clusters");
    let ids: Vec<&str> = clusters["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["blog", "shop"],
        "the hidden directories are no clusters"
    );
}

#[test]
fn configmap_mounted_at_clusters_dir() {
    swaps_reload("", |root| root.to_path_buf());
}

#[test]
fn clusters_dir_reached_through_data_symlink() {
    swaps_reload("clusters/", |root| root.join("clusters"));
}
