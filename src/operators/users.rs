//! uid/gid → names from the host's /etc/passwd and /etc/group, read once.

use std::collections::HashMap;

pub struct NameTable {
    names: HashMap<u32, String>,
    prefix: &'static str,
}

impl NameTable {
    /// The host's users (`$HOST_ROOT/etc/passwd` when `HOST_ROOT` is set).
    pub fn users() -> Self {
        Self::load("/etc/passwd", "uid")
    }

    /// The host's groups (`$HOST_ROOT/etc/group` when `HOST_ROOT` is set).
    pub fn groups() -> Self {
        Self::load("/etc/group", "gid")
    }

    fn load(path: &str, prefix: &'static str) -> Self {
        let text = std::fs::read_to_string(crate::hostroot::host_path(path)).unwrap_or_default();
        Self::parse(&text, prefix)
    }

    /// Parses `name:x:id:...` lines.
    pub fn parse(text: &str, prefix: &'static str) -> Self {
        let mut names = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split(':');
            let (Some(name), Some(_), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let Ok(id) = id.parse::<u32>() {
                names.entry(id).or_insert_with(|| name.to_string());
            }
        }
        NameTable { names, prefix }
    }

    /// The id of a name, when the table has it.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
            .min()
    }

    /// The name, or `uid:<n>` / `gid:<n>` when there is none.
    pub fn name(&self, id: u32) -> String {
        match self.names.get(&id) {
            Some(n) => n.clone(),
            None => format!("{}:{id}", self.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_falls_back() {
        let t = NameTable::parse(
            "root:x:0:0:root:/root:/bin/sh\nbad line\nnobody:x:65534:65534::/:/bin/false\n",
            "uid",
        );
        assert_eq!(t.name(0), "root");
        assert_eq!(t.name(65534), "nobody");
        assert_eq!(t.name(4294967295), "uid:4294967295");
        assert_eq!(t.id("nobody"), Some(65534));
        assert_eq!(t.id("bad line"), None);
    }
}
