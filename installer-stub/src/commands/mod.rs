//! The stub's commands that stand alone, one file each: what `delivery.run <command>` does,
//! given the arguments `cli` parsed. `main` dispatches to them. Commands that are a subsystem
//! of their own live with it: `install`, `add-node`, `status`, `check` in `install`,
//! `registry serve|start|stop` in `registry`, `lb` in `lb`, `cert` in `pki`.

pub mod config;
pub mod extract;
pub mod images;
pub mod inspect;
pub mod node_config;
pub mod verify;
