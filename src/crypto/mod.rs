//! Encryption at rest: the master key (from the environment or an owner-only file) and the
//! AEAD sealing of every stored secret. Nothing outside this module sees key material.

pub mod check;
pub mod master_key;
pub mod rotate;
pub mod seal;

pub use check::{verify_master_key, MasterKeyCheckError};
pub use master_key::{MasterKey, MasterKeyError, MasterKeySource};
pub use seal::{SealError, Sealed, Sealer, SecretPurpose};
