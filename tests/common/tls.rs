//! Throwaway certificates for the TLS tests, made with the `openssl` command line.

use std::path::Path;
use std::process::Command;

pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl not found");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a certificate it signed for localhost and 127.0.0.1, in `dir`: (ca.pem,
/// leaf.pem, leaf.key). (rustls, unlike libpq, does not take a self-signed certificate as
/// its own trust anchor.)
pub fn ca_and_leaf(dir: &Path) -> (String, String, String) {
    let at = |name: &str| dir.join(name).display().to_string();
    let (ca, ca_key, leaf, key, csr, ext) = (
        at("ca.pem"),
        at("ca.key"),
        at("leaf.pem"),
        at("leaf.key"),
        at("leaf.csr"),
        at("leaf.ext"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "1", "-subj", "/CN=test-ca"][..],
            &ec,
            &["-keyout", &ca_key, "-out", &ca],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", &key, "-out", &csr],
        ]
        .concat(),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &leaf,
    ]);
    (ca, leaf, key)
}
