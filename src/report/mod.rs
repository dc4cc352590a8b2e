//! What the commands print: the compare table and its JSON form.

pub mod compare;
pub mod kernel;
