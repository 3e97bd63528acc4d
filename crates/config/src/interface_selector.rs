//! Which interfaces the agent attaches to: `interfaces` (empty = all) minus
//! `excludeInterfaces`. Each entry is an exact name or a `/regex/`, as in
//! netobserv.

use super::ConfigError;
use regex::Regex;

#[derive(Debug, Clone)]
enum Pattern {
    Name(String),
    Regex(Regex),
}

impl Pattern {
    fn parse(key: &str, text: &str) -> Result<Pattern, ConfigError> {
        let text = text.trim();
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            let body = &text[1..text.len() - 1];
            return Regex::new(body).map(Pattern::Regex).map_err(|e| {
                ConfigError::invalid(
                    key,
                    text.to_string(),
                    &format!("a valid regular expression ({e})"),
                )
            });
        }
        if text.is_empty() {
            return Err(ConfigError::invalid(
                key,
                String::new(),
                "an interface name or /regex/",
            ));
        }
        Ok(Pattern::Name(text.to_string()))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Name(n) => n == name,
            Pattern::Regex(r) => r.is_match(name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InterfaceSelector {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl InterfaceSelector {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, ConfigError> {
        Ok(InterfaceSelector {
            include: include
                .iter()
                .map(|t| Pattern::parse("interfaces", t))
                .collect::<Result<_, _>>()?,
            exclude: exclude
                .iter()
                .map(|t| Pattern::parse("excludeInterfaces", t))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn selects(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_regexes() {
        let sel = InterfaceSelector::new(&[], &strings(&["lo", "/^docker/"])).unwrap();
        assert!(sel.selects("eth0"));
        assert!(!sel.selects("lo"));
        assert!(!sel.selects("docker0"));
        let sel = InterfaceSelector::new(&strings(&["/^veth/"]), &strings(&["lo"])).unwrap();
        assert!(sel.selects("veth12"));
        assert!(!sel.selects("eth0"));
    }

    #[test]
    fn bad_regex_names_key_and_value() {
        let err = InterfaceSelector::new(&[], &strings(&["/[/"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("excludeInterfaces") && err.contains("/[/"),
            "{err}"
        );
    }
}
