//! What `ig` needs from a BPF ELF object without loading it: BTF, initial `.rodata`, symbol
//! offsets, program sections and map names. Pure code.

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol};

use super::btf::{Btf, Kind, TypeId};
use super::GadgetError;

/// A program of the object: its function name and ELF section (which says how it attaches).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramInfo {
    pub name: String,
    pub section: String,
}

#[derive(Debug, Clone)]
pub struct BpfElf {
    pub btf: Btf,
    pub rodata: Vec<u8>,
    /// Global symbol → (section name, offset in section).
    pub symbols: HashMap<String, (String, u64)>,
    pub programs: Vec<ProgramInfo>,
    pub maps: Vec<String>,
}

impl BpfElf {
    pub fn parse(data: &[u8]) -> Result<Self, GadgetError> {
        let file = object::File::parse(data).map_err(|e| GadgetError::Elf(e.to_string()))?;
        if file.architecture() != object::Architecture::Bpf {
            return Err(GadgetError::Elf(format!(
                "not a BPF object (architecture {:?})",
                file.architecture()
            )));
        }
        let section_data = |name: &str| -> Result<Option<Vec<u8>>, GadgetError> {
            match file.section_by_name(name) {
                Some(s) => s
                    .data()
                    .map(|d| Some(d.to_vec()))
                    .map_err(|e| GadgetError::Elf(format!("section {name}: {e}"))),
                None => Ok(None),
            }
        };
        let has_code = file.sections().any(|s| {
            s.kind() == object::SectionKind::Text
                && s.size() > 0
                && s.name().is_ok_and(|n| n != ".text")
        });
        let btf_data = section_data(".BTF")?.ok_or_else(|| match has_code {
            true => GadgetError::Elf("no .BTF section: compile with -g and keep BTF".into()),
            false => GadgetError::Elf(
                "the object holds no BPF program (no SEC(\"…\") function): is its source empty?"
                    .into(),
            ),
        })?;
        let btf = Btf::parse(&btf_data)?;
        let rodata = section_data(".rodata")?.unwrap_or_default();

        let mut symbols = HashMap::new();
        let mut programs = Vec::new();
        for sym in file.symbols() {
            let (Ok(name), Some(index)) = (sym.name(), sym.section_index()) else {
                continue;
            };
            let Ok(section) = file.section_by_index(index) else {
                continue;
            };
            let section_name = section.name().unwrap_or_default().to_string();
            if sym.kind() == object::SymbolKind::Text && sym.is_global() && section_name != ".text"
            {
                programs.push(ProgramInfo {
                    name: name.to_string(),
                    section: section_name.clone(),
                });
            }
            if sym.is_global() || sym.kind() == object::SymbolKind::Data {
                symbols.insert(name.to_string(), (section_name, sym.address()));
            }
        }
        programs.sort_by(|a, b| a.name.cmp(&b.name));

        let mut maps: Vec<String> = btf
            .datasec(".maps")
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| btf.get(v.ty))
            .filter(|t| matches!(t.kind, Kind::Var { .. }))
            .map(|t| t.name.clone())
            .collect();
        maps.sort();
        Ok(BpfElf {
            btf,
            rodata,
            symbols,
            programs,
            maps,
        })
    }

    /// Offset of a global variable inside its data section: from the symbol table, falling back
    /// to the BTF datasec.
    pub fn var_offset(&self, section: &str, var: &str) -> Option<(u32, u32)> {
        let vars = self.btf.datasec(section)?;
        let sv = vars
            .iter()
            .find(|v| self.btf.get(v.ty).is_some_and(|t| t.name == var))?;
        let size = match self.btf.get(sv.ty).map(|t| &t.kind) {
            Some(Kind::Var { ty }) => self.btf.size_of(*ty).unwrap_or(sv.size),
            _ => sv.size,
        };
        let offset = match self.symbols.get(var) {
            Some((sec, off)) if sec == section => *off as u32,
            _ => sv.offset,
        };
        Some((offset, size))
    }

    /// The type a member of a BTF-defined map's struct in `.maps` points to: libbpf's
    /// `__type(key, T)` is a member `T *key`, `__uint(max_entries, N)` a member
    /// `int (*max_entries)[N]`.
    pub fn map_member_target(&self, map: &str, member: &str) -> Option<TypeId> {
        let btf = &self.btf;
        let var = btf
            .datasec(".maps")?
            .iter()
            .filter_map(|v| btf.get(v.ty))
            .find(|t| t.name == map)?;
        let Kind::Var { ty } = var.kind else {
            return None;
        };
        let Some(Kind::Struct { members, .. }) = btf.get(btf.resolve(ty)).map(|t| &t.kind) else {
            return None;
        };
        let member = members.iter().find(|m| m.name == member)?;
        match btf.get(btf.skip_qualifiers(member.ty)).map(|t| &t.kind) {
            Some(Kind::Ptr(target)) => Some(*target),
            _ => None,
        }
    }

    /// A number a BTF-defined map declares, e.g. `max_entries` or `type`, when it declares it.
    pub fn map_def(&self, map: &str, member: &str) -> Option<u32> {
        let target = self.map_member_target(map, member)?;
        match self
            .btf
            .get(self.btf.skip_qualifiers(target))
            .map(|t| &t.kind)
        {
            Some(Kind::Array { len, .. }) => Some(*len),
            _ => None,
        }
    }

    /// The key size of a BTF-defined map declared with `__type(key, T)`, when it declares it
    /// that way.
    pub fn map_key_size(&self, map: &str) -> Option<u32> {
        let target = self.map_member_target(map, "key")?;
        self.btf.size_of(target)
    }

    /// Names of all global variables (any section), as BTF lists them.
    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.btf.types().filter_map(|(_, t)| match t.kind {
            Kind::Var { .. } => Some(t.name.as_str()),
            _ => None,
        })
    }
}
