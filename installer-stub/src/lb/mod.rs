//! `lb serve|start|stop`: the node-local API server balancer of the Kubernetes bundle, which
//! lives in [`kubernetes::lb`]; [`service`] turns the command line into its settings and
//! prints what it did.

pub mod service;

pub use kubernetes::lb::Probe;
