//! Output helpers (placeholder).
