//! The live consult: what the session layer does to a consultation's lifecycle.

pub mod lifecycle;
