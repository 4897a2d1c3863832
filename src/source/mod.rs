//! Source connectors. Each lives in its own folder and depends only on `crate::core` and the
//! pipeline's [`crate::pipeline::Emitter`].

pub mod postgres;
