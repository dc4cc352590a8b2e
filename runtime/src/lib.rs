//! ttfuse-runtime: a Tensix runtime for TT-Lang programs.
//!
//! It holds the TT-Lang program model ([`ttl`]) with its parser and printer, the device targets
//! ([`device`]), a functional multi-core executor with bf16 numerics ([`exec`]) and a timing
//! model ([`timing`]). It knows nothing of graphs or e-graphs.
#![warn(missing_docs)]

pub mod calibrate;
pub mod device;
pub mod exec;
pub mod program;
pub mod tensor;
pub mod timing;
pub mod ttl;
