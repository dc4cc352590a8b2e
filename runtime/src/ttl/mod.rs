//! TT-Lang: the program model, its printer and its parser.

pub mod ast;
pub mod parse;
pub mod print;
