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
    let (ca, ca_key) = (at("ca.pem"), at("ca.key"));
    openssl(
        &[
            &["req", "-x509", "-days", "1", "-subj", "/CN=test-ca"][..],
            &EC,
            &["-keyout", &ca_key, "-out", &ca],
        ]
        .concat(),
    );
    let (leaf, key) = signed(dir, "localhost", "leaf");
    (ca, leaf, key)
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A certificate with Common Name `cn` (and localhost names) signed by the CA that
/// `ca_and_leaf` made in `dir`: (`<name>.pem`, `<name>.key`, the key readable by its owner
/// alone, as libpq wants).
pub fn signed(dir: &Path, cn: &str, name: &str) -> (String, String) {
    let at = |file: String| dir.join(file).display().to_string();
    let (ca, ca_key) = (at("ca.pem".into()), at("ca.key".into()));
    let (leaf, key, csr, ext) = (
        at(format!("{name}.pem")),
        at(format!("{name}.key")),
        at(format!("{name}.csr")),
        at(format!("{name}.ext")),
    );
    let subject = format!("/CN={cn}");
    openssl(
        &[
            &["req", "-subj", &subject][..],
            &EC,
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
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (leaf, key)
}
