//! TT-Lang: the program model, its printer and its parser.

pub mod ast;
pub mod ops;
pub mod parse;
pub mod print;
