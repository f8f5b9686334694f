//! Reading a catalog from Stripe's published descriptions (placeholder, being written).

use super::Catalog;

/// Why a description could not be turned into a catalog.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not yet written.
    #[error("not implemented")]
    Unsupported,
}

/// Reads an operations extraction or an OpenAPI description.
pub fn import(_text: &str) -> Result<Catalog, ImportError> {
    Err(ImportError::Unsupported)
}
