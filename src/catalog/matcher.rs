//! Matching a request's method and path to a listed operation (being written).

/// Placeholder.
pub struct CatalogIndex;
/// Placeholder.
pub struct Matched;
