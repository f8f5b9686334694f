//! JSON Schemas of operations' parameters (placeholder, being written).
