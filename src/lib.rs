//! ttfuse: a graph-level fusion optimizer for Tenstorrent Tensix chips.
//!
//! Pipeline: [`import`] a model into a [`graph::Graph`], [`optimize`] it in an e-graph,
//! [`plan`] fused kernels, [`lower`] them to a TT-Lang [`ttfuse_runtime::program::Program`],
//! and execute or export that program. [`reference`](mod@reference) is the numerical oracle.
#![warn(missing_docs)]

pub mod agreement;
pub mod bundle;
pub mod commands;
pub mod graph;
pub mod import;
pub mod inputs;
pub mod lower;
pub mod npy;
pub mod optimize;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod report;
