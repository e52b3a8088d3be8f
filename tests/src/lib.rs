//! End-to-end tests live in `tests/e2e`; this package has no library code.
