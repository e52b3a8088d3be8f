//! What can go wrong with a PKI directory, each error naming the file or directory it is about
//! and, where one helps, what to do next.

use std::path::PathBuf;

use openssl::error::ErrorStack;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failed to read {}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to write {}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("failed to create {}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("{} is not a PEM certificate", path.display())]
    NotCertificate { path: PathBuf, source: ErrorStack },
    #[error("{} is not a PEM private key", path.display())]
    NotKey { path: PathBuf, source: ErrorStack },
    #[error("failed to make an RSA key")]
    NewKey(#[source] ErrorStack),
    /// Building, signing or encoding a certificate or key.
    #[error(transparent)]
    Openssl(#[from] ErrorStack),
    #[error("{} holds no Kubernetes PKI (no ca.crt)\n  hint: run this on a master after install, or name the directory with --dir", dir.display())]
    NoPki { dir: PathBuf },
    #[error("{} has only one of {stem}.crt and {stem}.key: a CA needs both\n  hint: restore the missing file, or remove both to make a new CA (which means a new cluster)", dir.display())]
    HalfCa { dir: PathBuf, stem: &'static str },
    #[error("{} is missing from the PKI in {}", file.display(), dir.display())]
    Missing { file: PathBuf, dir: PathBuf },
    #[error("{} was not issued by {}/{ca}.crt: refusing to renew it\n  hint: this directory mixes certificates of two PKIs; restore the matching CA", cert.display(), dir.display())]
    ForeignLeaf {
        cert: PathBuf,
        dir: PathBuf,
        ca: &'static str,
    },
    #[error("no leaf certificates in {}\n  hint: run on a master after install, or name the directory with --dir", dir.display())]
    NoLeaves { dir: PathBuf },
    #[error("{} has no embedded client certificate and key: not renewed\n  hint: renew the files it points to with kubeadm, or remove it", path.display())]
    KubeconfigWithoutClient { path: PathBuf },
    #[error("{}: client-certificate-data is not a certificate", path.display())]
    KubeconfigCertificate { path: PathBuf, source: ErrorStack },
    #[error("{}: client-key-data is not a private key", path.display())]
    KubeconfigKey { path: PathBuf, source: ErrorStack },
    #[error("{}: its client certificate was not issued by this cluster's ca.crt: refusing to renew it", path.display())]
    ForeignKubeconfig { path: PathBuf },
    #[error("/etc/kubernetes/pki/{file} there differs from this cluster's: the host holds another cluster's PKI\n  hint: if the host is to join this cluster, run `kubeadm reset` there and remove /etc/kubernetes/pki; otherwise fix the Clusterfile")]
    OtherCluster { file: String },
    /// Reading a master's certificate failed (the caller's transport).
    #[error(transparent)]
    Fetch(Box<dyn std::error::Error + Send + Sync>),
}
