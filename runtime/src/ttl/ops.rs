//! TT-Lang's vocabulary of block functions, shared by the executor (which gives them meaning)
//! and by code generators (which emit them), so the two cannot drift apart.

/// Elementwise functions of one block, `ttl.math.<name>(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryFn {
    /// `exp`
    Exp,
    /// `log`
    Log,
    /// `sqrt`
    Sqrt,
    /// `rsqrt`
    Rsqrt,
    /// `recip`
    Recip,
    /// `tanh`
    Tanh,
    /// `sigmoid`
    Sigmoid,
    /// `relu`
    Relu,
    /// `abs`
    Abs,
    /// `neg`
    Neg,
    /// `floor`
    Floor,
}

impl UnaryFn {
    /// All functions with their `ttl.math` names.
    pub const ALL: [(UnaryFn, &'static str); 11] = [
        (UnaryFn::Exp, "exp"),
        (UnaryFn::Log, "log"),
        (UnaryFn::Sqrt, "sqrt"),
        (UnaryFn::Rsqrt, "rsqrt"),
        (UnaryFn::Recip, "recip"),
        (UnaryFn::Tanh, "tanh"),
        (UnaryFn::Sigmoid, "sigmoid"),
        (UnaryFn::Relu, "relu"),
        (UnaryFn::Abs, "abs"),
        (UnaryFn::Neg, "neg"),
        (UnaryFn::Floor, "floor"),
    ];

    /// The `ttl.math` name, also the key of its SFPU cost in the device file.
    pub fn name(self) -> &'static str {
        UnaryFn::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| *n)
    }

    /// The function called `ttl.math.<name>`, if there is one.
    pub fn from_name(name: &str) -> Option<UnaryFn> {
        UnaryFn::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (f, n) in UnaryFn::ALL {
            assert_eq!(f.name(), n);
            assert_eq!(UnaryFn::from_name(n), Some(f));
        }
        assert_eq!(UnaryFn::from_name("gelu"), None);
    }
}
