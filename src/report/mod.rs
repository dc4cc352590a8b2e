//! What the commands print: the compare table, its JSON form and HTML page, the explain and
//! inspect reports, and the figures they share.

pub mod charts;
pub mod compare;
pub mod dot;
pub mod explain;
pub mod figures;
pub mod html;
pub mod inspect;
pub mod kernel;
