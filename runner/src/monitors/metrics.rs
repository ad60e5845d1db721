//! The Prometheus text exposition of `sluice canary`.
