//! Shared test support lives in tests/all.
