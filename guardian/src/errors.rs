//! Error text for operators: one sentence, each cause once.
//!
//! Module errors often name their cause in their own message (that makes them readable on
//! their own) and also expose it as `source()`. Printing the chain with `{:#}` would then say
//! the cause twice; this prints each link of the chain only if the text so far lacks it.
pub fn sentence(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Read {
            path: "/x".into(),
            source: io,
        });
        assert_eq!(format!("{e:#}").matches("not found").count(), 2);
        assert_eq!(sentence(&e), "cannot read /x: entity not found");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(sentence(&e), "outer: inner");
    }
}
