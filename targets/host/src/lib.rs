//! Host backend (placeholder).
