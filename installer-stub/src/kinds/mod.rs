//! Bundle kinds: what a kind of bundle adds to the generic installer. Kubernetes is the one
//! kind today ([`kubernetes`], over the `kubernetes` crate).

pub(crate) mod kubernetes;
