//! Rule files: parsing `rules/*.rules` into egg rewrites, and the applier that type-checks and
//! budgets every application.
//!
//! # Format
//!
//! One rule per line; `#` starts a comment; a line that starts with whitespace continues the
//! rule above it.
//!
//! ```text
//! name: (lhs pattern) => (rhs pattern)
//! name: (lhs pattern) => (rhs pattern) if cond(?x, 0.5), ?ax = last_axis(?x)
//! name: (lhs pattern) <=> (rhs pattern)      # both directions: `name` and `name-rev`
//! use simplify                               # also run an earlier stage's rules here
//! ```
//!
//! Patterns are s-expressions in the language of [`super::language`] with `?var` variables.
//! After `if` come comma-separated guards (`cond(args)`) and bindings (`?v = fn(args)`), whose
//! names and meanings are listed in [`super::conditions`]. Bidirectional rules take no clauses.
//!
//! Every application is also checked against the analysis: the right-hand side must type-check
//! and have exactly the matched e-class's type (so `(mul ?x ?c) => ?x if const(?c, 1)` does not
//! fire when `?c` broadcasts `?x` to a larger shape), and it must fit the node budget.

use std::path::{Path, PathBuf};

use egg::{Applier, ENodeOrVar, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};
use thiserror::Error;

use super::analysis::{TGraph, TensorAnalysis};
use super::conditions::{Arg, Binder, Guard};
use super::language::{Attr, TNode, TOp};
use super::typing::{infer_enode, ClassData};

/// The stages, in the order they run, and their embedded rule files.
pub const STAGES: [(&str, &str); 4] = [
    ("simplify", include_str!("../../rules/simplify.rules")),
    ("recognize", include_str!("../../rules/recognize.rules")),
    ("decompose", include_str!("../../rules/decompose.rules")),
    ("fuse", include_str!("../../rules/fuse.rules")),
];

/// A rule file that could not be read or parsed.
#[derive(Debug, Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error("cannot read rule file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A rule is malformed.
    #[error("{file}:{line}: {reason}")]
    Syntax {
        /// The file.
        file: String,
        /// The 1-based line where the rule starts.
        line: usize,
        /// What is wrong and how to write it.
        reason: String,
    },
}

/// A guard or binding after `if`.
#[derive(Clone, Debug)]
pub enum Clause {
    /// `cond(args)`.
    Guard(Guard, Vec<Arg>),
    /// `?v = fn(args)`.
    Bind(Var, Binder, Vec<Arg>),
}

/// One parsed rule.
#[derive(Clone, Debug)]
pub struct RuleDef {
    /// The rule's name (unique over all files).
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// The line it starts on.
    pub line: usize,
    /// Left-hand side.
    pub lhs: Pattern<TNode>,
    /// Right-hand side.
    pub rhs: Pattern<TNode>,
    /// Guards and bindings, in order.
    pub clauses: Vec<Clause>,
}

/// The rules of one stage.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The stage name (the file stem).
    pub name: String,
    /// Its rules: its own file's first, then those of the stages it `use`s.
    pub rules: Vec<RuleDef>,
    /// How many of `rules` come from its own file.
    pub own: usize,
}

/// Splits `s` at the first top-level (outside parentheses) occurrence of `sep`.
fn split_top<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 && s[i..].starts_with(sep) => {
                return Some((&s[..i], &s[i + sep.len()..]))
            }
            _ => {}
        }
    }
    None
}

fn split_all_top<'a>(mut s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = vec![];
    while let Some((a, b)) = split_top(s, sep) {
        parts.push(a);
        s = b;
    }
    parts.push(s);
    parts
}

fn parse_pattern(text: &str, side: &str) -> Result<Pattern<TNode>, String> {
    let p: Pattern<TNode> = text
        .trim()
        .parse()
        .map_err(|e| format!("{side} `{}`: {e}", text.trim()))?;
    for n in p.ast.as_ref() {
        if let ENodeOrVar::ENode(TNode {
            op: TOp::Leaf(Attr::Ref(r)),
            ..
        }) = n
        {
            return Err(format!(
                "{side} refers to table entry `{r}`; rules may only use ?vars and literals"
            ));
        }
    }
    Ok(p)
}

fn parse_var(s: &str) -> Result<Var, String> {
    let s = s.trim();
    if !s.starts_with('?') || s.len() < 2 {
        return Err(format!("`{s}` is not a ?variable"));
    }
    s.parse().map_err(|e| format!("`{s}`: {e:?}"))
}

fn parse_call(s: &str) -> Result<(String, Vec<Arg>), String> {
    let s = s.trim();
    let (name, rest) = s
        .split_once('(')
        .ok_or_else(|| format!("`{s}` should look like name(?x, 0.5)"))?;
    let body = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("`{s}` is missing its closing `)`"))?;
    let args = body
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.starts_with('?') {
                parse_var(a).map(Arg::Var)
            } else {
                a.parse::<f32>()
                    .map(Arg::Num)
                    .map_err(|_| format!("argument `{a}` is neither a ?var nor a number"))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((name.trim().to_string(), args))
}

fn parse_clause(s: &str) -> Result<Clause, String> {
    match split_top(s, "=") {
        Some((var, call)) => {
            let var = parse_var(var)?;
            let (name, args) = parse_call(call)?;
            Ok(Clause::Bind(var, Binder::parse(&name, &args)?, args))
        }
        None => {
            let (name, args) = parse_call(s)?;
            Ok(Clause::Guard(Guard::parse(&name, &args)?, args))
        }
    }
}

fn vars_of(args: &[Arg]) -> impl Iterator<Item = Var> + '_ {
    args.iter().filter_map(|a| match a {
        Arg::Var(v) => Some(*v),
        Arg::Num(_) => None,
    })
}

fn check_vars(
    lhs: &Pattern<TNode>,
    rhs: &Pattern<TNode>,
    clauses: &[Clause],
) -> Result<(), String> {
    let mut bound = lhs.vars();
    for c in clauses {
        let (args, new) = match c {
            Clause::Guard(_, a) => (a, None),
            Clause::Bind(v, _, a) => (a, Some(*v)),
        };
        if let Some(v) = vars_of(args).find(|v| !bound.contains(v)) {
            return Err(format!(
                "condition uses {v}, which the left-hand side does not bind"
            ));
        }
        if let Some(v) = new {
            if bound.contains(&v) {
                return Err(format!("{v} is bound twice"));
            }
            bound.push(v);
        }
    }
    if let Some(v) = rhs.vars().into_iter().find(|v| !bound.contains(v)) {
        return Err(format!("right-hand side uses {v}, which is not bound"));
    }
    if matches!(lhs.ast.as_ref().last(), Some(ENodeOrVar::Var(_))) {
        return Err("the left-hand side must be an expression, not a bare ?variable".into());
    }
    Ok(())
}

fn parse_rule(text: &str, file: &str, line: usize) -> Result<Vec<RuleDef>, String> {
    let (name, body) = text.split_once(':').ok_or("a rule starts with `name:`")?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "rule name `{name}` must be letters, digits, `_` or `-`"
        ));
    }
    let (main, clauses) = match split_top(body, " if ") {
        Some((m, c)) => (m, Some(c)),
        None => (body, None),
    };
    let clauses: Vec<Clause> = match clauses {
        Some(c) => split_all_top(c, ",")
            .into_iter()
            .map(parse_clause)
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    let def = |name: String, lhs: Pattern<TNode>, rhs: Pattern<TNode>, clauses: Vec<Clause>| {
        check_vars(&lhs, &rhs, &clauses)?;
        Ok::<_, String>(RuleDef {
            name,
            file: file.to_string(),
            line,
            lhs,
            rhs,
            clauses,
        })
    };
    if let Some((l, r)) = split_top(main, "<=>") {
        if !clauses.is_empty() {
            return Err("a bidirectional rule (<=>) takes no conditions; write two rules".into());
        }
        let (lhs, rhs) = (
            parse_pattern(l, "left-hand side")?,
            parse_pattern(r, "right-hand side")?,
        );
        return Ok(vec![
            def(name.to_string(), lhs.clone(), rhs.clone(), vec![])?,
            def(format!("{name}-rev"), rhs, lhs, vec![])?,
        ]);
    }
    let (l, r) = split_top(main, "=>").ok_or("expected `lhs => rhs` or `lhs <=> rhs`")?;
    Ok(vec![def(
        name.to_string(),
        parse_pattern(l, "left-hand side")?,
        parse_pattern(r, "right-hand side")?,
        clauses,
    )?])
}

/// A parsed rule file.
#[derive(Clone, Debug)]
pub struct RuleFile {
    /// Its rules in file order.
    pub rules: Vec<RuleDef>,
    /// Earlier stages whose rules this stage also runs (`use <stage>` lines), with their lines.
    pub uses: Vec<(String, usize)>,
}

/// Parses one rule file. `file` names it in errors.
pub fn parse_rules(text: &str, file: &str) -> Result<RuleFile, RuleError> {
    let mut pending: Vec<(usize, String)> = vec![];
    let mut uses = vec![];
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").replace('\t', " ");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(stage) = line.strip_prefix("use ") {
            uses.push((stage.trim().to_string(), i + 1));
            continue;
        }
        if line.starts_with(' ') {
            match pending.last_mut() {
                Some((_, t)) => {
                    t.push(' ');
                    t.push_str(line.trim());
                }
                None => {
                    let reason =
                        "an indented line continues a rule, but no rule came before it".into();
                    return Err(RuleError::Syntax {
                        file: file.into(),
                        line: i + 1,
                        reason,
                    });
                }
            }
        } else {
            pending.push((i + 1, line.trim().to_string()));
        }
    }
    let mut out = vec![];
    for (line, text) in pending {
        let rules = parse_rule(&text, file, line).map_err(|reason| RuleError::Syntax {
            file: file.into(),
            line,
            reason,
        })?;
        out.extend(rules);
    }
    Ok(RuleFile { rules: out, uses })
}

/// Loads every stage, from `dir/<stage>.rules` when `dir` is given, else from the copies
/// embedded at build time. Rule names must be unique across all stages.
pub fn load_stages(dir: Option<&Path>) -> Result<Vec<Stage>, RuleError> {
    let mut stages = vec![];
    let mut seen: std::collections::BTreeMap<String, (String, usize)> = Default::default();
    for (name, embedded) in STAGES {
        let file = format!("rules/{name}.rules");
        let (text, file) = match dir {
            Some(d) => {
                let path = d.join(format!("{name}.rules"));
                let text = std::fs::read_to_string(&path).map_err(|source| RuleError::Io {
                    path: path.clone(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            None => (embedded.to_string(), file),
        };
        let parsed = parse_rules(&text, &file)?;
        let mut rules = parsed.rules;
        let own = rules.len();
        for r in &rules {
            if let Some((f, l)) = seen.insert(r.name.clone(), (r.file.clone(), r.line)) {
                let reason = format!("rule `{}` is already defined at {f}:{l}", r.name);
                return Err(RuleError::Syntax {
                    file: r.file.clone(),
                    line: r.line,
                    reason,
                });
            }
        }
        for (used, line) in parsed.uses {
            let earlier: &Stage =
                stages
                    .iter()
                    .find(|s: &&Stage| s.name == used)
                    .ok_or_else(|| RuleError::Syntax {
                        file: file.clone(),
                        line,
                        reason: format!("`use {used}` must name an earlier stage"),
                    })?;
            rules.extend(earlier.rules[..earlier.own].iter().cloned());
        }
        stages.push(Stage {
            name: name.to_string(),
            own,
            rules,
        });
    }
    Ok(stages)
}

/// Applies a rule's right-hand side after its guards, bindings, type check and budget check.
pub struct GuardedApplier {
    rhs: Pattern<TNode>,
    clauses: Vec<Clause>,
    /// E-nodes one application can add at most: the rhs's non-variable nodes plus one leaf per
    /// binding.
    max_new_nodes: usize,
}

impl GuardedApplier {
    /// The applier for `rule`.
    pub fn new(rule: &RuleDef) -> Self {
        let rhs_nodes = rule
            .rhs
            .ast
            .as_ref()
            .iter()
            .filter(|n| matches!(n, ENodeOrVar::ENode(_)))
            .count();
        let binds = rule
            .clauses
            .iter()
            .filter(|c| matches!(c, Clause::Bind(..)))
            .count();
        GuardedApplier {
            rhs: rule.rhs.clone(),
            clauses: rule.clauses.clone(),
            max_new_nodes: rhs_nodes + binds,
        }
    }
}

/// The data the pattern `ast` would have under `subst` (`extra` gives bound leaves).
fn type_of(
    ast: &PatternAst<TNode>,
    egraph: &TGraph,
    subst: &Subst,
    extra: &[(Var, ClassData)],
) -> ClassData {
    let mut datas: Vec<ClassData> = Vec::with_capacity(ast.as_ref().len());
    for n in ast.as_ref() {
        let d = match n {
            ENodeOrVar::Var(v) => match extra.iter().find(|(x, _)| x == v) {
                Some((_, d)) => d.clone(),
                None => match subst.get(*v) {
                    Some(&id) => egraph[id].data.clone(),
                    None => ClassData::Invalid(format!("{v} is unbound")),
                },
            },
            ENodeOrVar::ENode(e) => {
                let kids: Vec<&ClassData> =
                    e.children.iter().map(|&c| &datas[usize::from(c)]).collect();
                infer_enode(&e.op, &kids)
            }
        };
        datas.push(d);
    }
    datas
        .pop()
        .unwrap_or(ClassData::Invalid("empty pattern".into()))
}

impl Applier<TNode, TensorAnalysis> for GuardedApplier {
    fn apply_one(
        &self,
        egraph: &mut TGraph,
        eclass: Id,
        subst: &Subst,
        searcher_ast: Option<&PatternAst<TNode>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let mut bound: Vec<(Var, Attr)> = vec![];
        for c in &self.clauses {
            match c {
                Clause::Guard(g, args) => {
                    if !g.check(egraph, subst, args) {
                        return vec![];
                    }
                }
                Clause::Bind(v, b, args) => match b.compute(egraph, subst, args) {
                    Some(a) => bound.push((*v, a)),
                    None => return vec![],
                },
            }
        }
        let extra: Vec<(Var, ClassData)> = bound
            .iter()
            .map(|(v, a)| (*v, infer_enode(&TOp::Leaf(a.clone()), &[])))
            .collect();
        let data = type_of(&self.rhs.ast, egraph, subst, &extra);
        if !data.same_type(&egraph[eclass].data) {
            return vec![];
        }
        if !TensorAnalysis::admit(egraph, self.max_new_nodes) {
            return vec![];
        }
        let mut subst = subst.clone();
        for (v, a) in bound {
            let id = egraph.add(TNode::leaf(a));
            subst.insert(v, id);
        }
        let changed = self
            .rhs
            .apply_one(egraph, eclass, &subst, searcher_ast, rule_name);
        if !changed.is_empty() {
            egraph.analysis.fired.push((rule_name.to_string(), eclass));
        }
        changed
    }

    fn vars(&self) -> Vec<Var> {
        let bound: Vec<Var> = self
            .clauses
            .iter()
            .filter_map(|c| {
                if let Clause::Bind(v, ..) = c {
                    Some(*v)
                } else {
                    None
                }
            })
            .collect();
        let mut vars: Vec<Var> = self
            .rhs
            .vars()
            .into_iter()
            .filter(|v| !bound.contains(v))
            .collect();
        for c in &self.clauses {
            let args = match c {
                Clause::Guard(_, a) | Clause::Bind(_, _, a) => a,
            };
            vars.extend(vars_of(args).filter(|v| !bound.contains(v)));
        }
        vars
    }
}

/// The egg rewrite for `rule`.
pub fn to_rewrite(rule: &RuleDef) -> Result<Rewrite<TNode, TensorAnalysis>, RuleError> {
    Rewrite::new(
        rule.name.as_str(),
        rule.lhs.clone(),
        GuardedApplier::new(rule),
    )
    .map_err(|reason| RuleError::Syntax {
        file: rule.file.clone(),
        line: rule.line,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions_bindings_and_continuations() {
        let text = "# comment\n\
                    a: (mul ?x ?c) => ?x if const(?c, 1)   # trailing\n\
                    b: (rmsnorm ?x ?g ?e)\n   => (mul ?x ?g) if ?ax = last_axis(?x), scalar(?e)\n\
                    c: (div ?x ?y) <=> (mul ?x (recip ?y))\n";
        let rules = parse_rules(text, "t.rules").unwrap().rules;
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "c-rev"]);
        assert_eq!(rules[1].line, 3);
        assert_eq!(rules[1].clauses.len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("x: (mul ?x ?y) => ?z\n", "not bound"),
            ("\n\ny: (mul ?x ?y) => (frob ?x)\n", "unknown operator"),
            ("z: (mul ?x ?y) => ?x if nope(?x)\n", "unknown condition"),
            ("w: (mul ?x ?y) -> ?x\n", "expected `lhs => rhs`"),
            ("v: ?x => (neg (neg ?x))\n", "bare ?variable"),
        ];
        for (text, want) in cases {
            let err = parse_rules(text, "bad.rules").unwrap_err().to_string();
            assert!(err.starts_with("bad.rules:"), "{err}");
            assert!(err.contains(want), "{err} should mention {want}");
        }
        let err = parse_rules("\n\ny: (mul ?x ?y) => (frob ?x)\n", "bad.rules")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.rules:3:"), "{err}");
    }

    #[test]
    fn embedded_rule_files_load() {
        let stages = load_stages(None).unwrap();
        assert_eq!(
            stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["simplify", "recognize", "decompose", "fuse"]
        );
        for s in &stages {
            for r in &s.rules {
                to_rewrite(r).unwrap();
            }
        }
    }
}
