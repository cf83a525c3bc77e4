//! Helpers for the contract tests.
