//! Certificates made for the TLS tests (rcgen), written as PEM files into a temporary dir.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// What a certificate is for (server, client).
pub type Usage = ExtendedKeyUsagePurpose;

/// A CA: its certificate and the key it signs with.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }
}

/// A temporary dir of PEM files; deleted when dropped.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki { dir: tempfile::tempdir().unwrap() }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the certificate of `ca` as `NAME.pem`.
    pub fn write_ca(&self, name: &str, ca: &Ca) -> PathBuf {
        let path = self.path(&format!("{name}.pem"));
        std::fs::write(&path, ca.cert.pem()).unwrap();
        path
    }

    /// A certificate signed by `ca` for 127.0.0.1 and localhost, with `usages` (server and
    /// client for a Redis node, which replicates with it too): `(cert, key)` paths.
    pub fn leaf(
        &self,
        name: &str,
        ca: &Ca,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        let (cert_path, key_path) =
            (self.path(&format!("{name}.crt")), self.path(&format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}
